import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { UsageError } from '../errors.js'
import type { Store } from '../store/types.js'
import type { DeadLetterStore } from '../store/deadletter.js'
import { buildApp, type ServiceStatus } from './app.js'
import { LOOPBACK, apiConfigSchema, type ApiConfig } from './config.js'

/** Refuses to expose the API beyond loopback without keys, unless the operator said insecure. */
export function checkExposure (cfg: ApiConfig): void {
  if (LOOPBACK.test(cfg.host) || cfg.keys.length > 0 || cfg.insecure) return
  throw new UsageError(`refusing to serve the API on ${cfg.host} without API keys: add api.keys (keatrail api-key makes one) or set api.insecure / --insecure`)
}

/** Builds the app with an audit log file, checks exposure, listens; resolves to the app and its URL. */
export async function serveApi (store: Store, api: unknown, dataDir: string, status: ServiceStatus, registry?: Registry, deadLetters?: DeadLetterStore): Promise<{ app: FastifyInstance, url: string }> {
  const cfg = apiConfigSchema.parse(api ?? {})
  checkExposure(cfg)
  const auditPath = cfg.auditLog ?? `${dataDir}/audit.log`
  mkdirSync(dirname(auditPath), { recursive: true })
  const app = await buildApp({
    store, api: cfg, status, ...(registry === undefined ? {} : { registry }), ...(deadLetters === undefined ? {} : { deadLetters }),
    // Lease lookups reveal who had which address: keep who asked, append-only.
    audit: (e) => { appendFileSync(auditPath, JSON.stringify(e) + '\n') }
  })
  const url = await app.listen({ host: cfg.host, port: cfg.port })
  return { app, url }
}
