import { appendFileSync, chmodSync, closeSync, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { UsageError } from '../errors.js'
import type { Store } from '../store/types.js'
import type { DeadLetterStore } from '../store/deadletter.js'
import { buildApp, type AuditEntry, type ServiceStatus } from './app.js'
import { LOOPBACK, apiConfigSchema, corsNeedsKeys, type ApiConfig } from './config.js'

/** Refuses to expose the API beyond loopback without keys, unless the operator said insecure. */
export function checkExposure (cfg: ApiConfig): void {
  corsNeedsKeys(cfg)
  if (LOOPBACK.test(cfg.host) || cfg.keys.length > 0 || cfg.insecure) return
  throw new UsageError(`refusing to serve the API on ${cfg.host} without API keys: add api.keys (keatrail api-key makes one) or set api.insecure / --insecure`)
}

/**
 * Opens the audit log for appending. It says who looked up which address or client, so it is
 * created 0600 (its directory 0700 when created here) whatever the umask, and an existing file
 * is brought back to 0600. One descriptor; each entry is one write(2) to it, so nothing waits in
 * a buffer to be lost at close (an entry after close still goes to the file).
 */
export function openAuditLog (path: string): { write: (e: AuditEntry) => void, close: () => void } {
  const dir = dirname(path)
  const first = mkdirSync(dir, { recursive: true, mode: 0o700 })
  // mkdir's mode is masked by the umask: set it on each directory made here, and only those.
  if (first !== undefined) {
    for (let d = dir, i = 0; i < 256; d = dirname(d), i++) { chmodSync(d, 0o700); if (d === first || d === dirname(d)) break }
  }
  let fd = openSync(path, 'a', 0o600)
  fchmodSync(fd, 0o600)
  return {
    write: (e) => {
      const line = JSON.stringify(e) + '\n'
      if (fd >= 0) writeSync(fd, line)
      else appendFileSync(path, line, { mode: 0o600 })
    },
    close: () => { if (fd >= 0) { closeSync(fd); fd = -1 } }
  }
}

/** Builds the app with an audit log file, checks exposure, listens; resolves to the app and its URL. */
export async function serveApi (store: Store, api: unknown, dataDir: string, status: ServiceStatus, registry?: Registry, deadLetters?: DeadLetterStore, logger?: FastifyBaseLogger): Promise<{ app: FastifyInstance, url: string }> {
  const cfg = apiConfigSchema.parse(api ?? {})
  checkExposure(cfg)
  const audit = openAuditLog(cfg.auditLog ?? `${dataDir}/audit.log`)
  let app: FastifyInstance
  try {
    app = await buildApp({
      store, api: cfg, status, ...(registry === undefined ? {} : { registry }), ...(deadLetters === undefined ? {} : { deadLetters }), ...(logger === undefined ? {} : { loggerInstance: logger }),
      // Reads reveal who had which address: keep who asked, append-only.
      audit: audit.write
    })
  } catch (err) {
    audit.close()
    throw err
  }
  app.addHook('onClose', async () => { audit.close() })
  try {
    const url = await app.listen({ host: cfg.host, port: cfg.port })
    return { app, url }
  } catch (err) {
    await app.close()
    throw err
  }
}
