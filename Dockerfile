# parcelcast: one container, HTTP + WebSocket + background workers, as a non-root user.
# Bun comes from the npm package `bun` (a devDependency), like on a developer machine.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
 && (node_modules/.bin/bun --version || node node_modules/bun/install.js) \
 && npm cache clean --force

COPY sql ./sql
COPY src ./src

USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
STOPSIGNAL SIGTERM
CMD ["node_modules/.bin/bun", "run", "start"]
