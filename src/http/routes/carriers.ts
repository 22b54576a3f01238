/**
 * `/v1/carriers`: every known carrier with its form, polling state and health; and the
 * registration of push-only carriers (scans that arrive only through `POST /v1/events`).
 */
import { Elysia, t } from 'elysia'
import type { CarrierDirectory } from '../../carriers/directory.ts'
import { ValidationError } from '../../errors.ts'
import { IdentityError, normalizeCarrier } from '../../pipeline/identity.ts'
import { storable } from '../../pipeline/storable.ts'

export function carrierRoutes(carriers: CarrierDirectory) {
  return new Elysia({ name: 'carriers' })
    .get('/v1/carriers', async () => ({ items: await carriers.list() }), {
      detail: { summary: 'Every known carrier: {code, name, form, polling, health}', tags: ['carriers'] }
    })
    .put(
      '/v1/carriers/:code',
      async ({ params, body, set }) => {
        let code: string
        try {
          code = normalizeCarrier(params.code)
        } catch (err) {
          if (err instanceof IdentityError) throw new ValidationError('code', err.message)
          throw err
        }
        const name = storable('name', body.name.trim())
        if (!name) throw new ValidationError('name', 'must not be empty')
        const { carrier, created } = await carriers.register(code, name)
        set.status = created ? 201 : 200
        return carrier
      },
      {
        body: t.Object({ name: t.String({ minLength: 1, maxLength: 100, description: 'shown in GET /v1/carriers' }) }),
        detail: { summary: 'Register a push-only carrier (201 new, 200 renamed); its scans arrive through POST /v1/events', tags: ['carriers'] }
      }
    )
}
