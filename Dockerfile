# parcelcast: one container, HTTP + WebSocket + background workers, as a non-root user.
# Bun comes from the npm package `bun` (a dependency), like on a developer machine.
# With DATABASE_URL set (compose.yaml) the database is external; without it and with no
# PostgreSQL beside it, parcelcast runs its embedded one with its data in /data.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
# patches/: fixes to dependencies, applied by the postinstall script (patch-package) during npm ci.
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && (node_modules/.bin/bun --version || node node_modules/bun/install.js) \
 && npm cache clean --force

COPY sql ./sql
COPY src ./src

ENV PARCELCAST_DATA_DIR=/data
RUN mkdir /data && chown node:node /data
VOLUME /data

USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
STOPSIGNAL SIGTERM
CMD ["node_modules/.bin/bun", "run", "start"]
