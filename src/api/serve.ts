import { chmodSync, closeSync, constants, fchmodSync, fstatSync, ftruncateSync, mkdirSync, openSync, statSync, writeSync, type Stats } from 'node:fs'
import { dirname } from 'node:path'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { AUDIT_LOG_CODES, AuditLogError, AuditQuotaError, ConfigInvalidError, UsageError } from '../errors.js'
import type { Store } from '../store/types.js'
import type { DeadLetterStore } from '../store/deadletter.js'
import { AuditShares } from './audit-shares.js'
import { AUDIT_ENTRY_ROOM, buildApp, type AuditRecord, type ServiceStatus } from './app.js'
import { LOOPBACK, apiConfigSchema, corsNeedsKeys, type ApiConfig } from './config.js'

/** Refuses to expose the API beyond loopback without keys, unless the operator said insecure. */
export function checkExposure (cfg: ApiConfig): void {
  corsNeedsKeys(cfg)
  if (LOOPBACK.test(cfg.host) || cfg.keys.length > 0 || cfg.insecure) return
  throw new UsageError(`refusing to serve the API on ${cfg.host} without API keys: add api.keys (keatrail api-key makes one) or set api.insecure / --insecure`)
}

/** What a file that is not a regular file is, in words. */
function kindOf (st: Stats): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a regular file'
}

function notRegular (path: string, kind: string): Error {
  return new ConfigInvalidError('api.auditLog', `${path} is ${kind}: the audit log must be a regular file (keatrail appends to it and keeps it mode 0600); name a file, or leave api.auditLog out for <dataDir>/audit.log`)
}

/**
 * Opens `path` for appending, a regular file only, and brings it to 0600. Anything else (a
 * device such as /dev/null, a FIFO, a directory, a socket) is refused, never opened for long
 * nor chmod-ed: it is looked at before opening (opening a device can act on it), and the
 * descriptor is looked at after (the path may have changed in between). O_NONBLOCK: a FIFO with
 * no reader fails (ENXIO) rather than blocking the process in open(2).
 */
function openRegular (path: string): number {
  let before: Stats | undefined
  try { before = statSync(path) } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new AuditLogError(path, (err as Error).message)
  }
  if (before !== undefined && !before.isFile()) throw notRegular(path, kindOf(before))
  let fd: number
  try {
    // Read too: each key's share is counted from the lines in the file (AuditShares).
    fd = openSync(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOCTTY | constants.O_NONBLOCK, 0o600)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EISDIR') throw notRegular(path, 'a directory')
    if (code === 'ENXIO') throw notRegular(path, 'a FIFO or socket')
    throw new AuditLogError(path, (err as Error).message)
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw notRegular(path, kindOf(st))
    fchmodSync(fd, 0o600)
    return fd
  } catch (err) {
    closeSync(fd)
    throw (err as { code?: string }).code === 'KEATRAIL_ERR_CONFIG_INVALID' ? err : new AuditLogError(path, (err as Error).message)
  }
}

/** The audit log as serveApi uses it. */
export interface AuditLog {
  /** Less than AUDIT_ENTRY_ROOM left under api.auditLogMaxBytes: reads are refused (most, or all) until it is rotated. */
  full: () => boolean
  /** Bytes left under api.auditLogMaxBytes (Infinity: unbounded; closed: what the path's file leaves). */
  room: () => number
  /**
   * Appends one entry of `key`'s as one whole line; throws when it could not (disk full…),
   * leaving no part of it in the file, and AuditQuotaError when it would take `key` past its share.
   */
  write: (e: AuditRecord, key: string) => void
  /** Throws AuditQuotaError when less than `bytes` is left of `key`'s share. */
  admit: (key: string, bytes: number) => void
  /** Opens the path again (logrotate moved the file away): new entries go to the file now there. Throws, keeping the old file, when it cannot. */
  reopen: () => void
  close: () => void
}

/**
 * Opens the audit log for appending. It says who looked up which address or client, so it is
 * a regular file created 0600 (its directory 0700 when created here) whatever the umask, and an
 * existing file is brought back to 0600. One descriptor; each entry is written whole before the
 * read it records is answered (nothing waits in a buffer to be lost at close; an entry after
 * close still goes to the file).
 */
export function openAuditLog (path: string, maxBytes = Infinity, keyShare = 1): AuditLog {
  const dir = dirname(path)
  try {
    const first = mkdirSync(dir, { recursive: true, mode: 0o700 })
    // mkdir's mode is masked by the umask: set it on each directory made here, and only those.
    if (first !== undefined) {
      for (let d = dir, i = 0; i < 256; d = dirname(d), i++) { chmodSync(d, 0o700); if (d === first || d === dirname(d)) break }
    }
  } catch (err) {
    throw new AuditLogError(path, (err as Error).message)
  }
  let fd = openRegular(path)
  /** A line was cut by a failed write and could not be taken back: the next entry starts on a line of its own. */
  let torn = false
  const share = maxBytes === Infinity || keyShare >= 1 ? Infinity : Math.floor(maxBytes * keyShare)
  const shares = new AuditShares()
  // Its first step of counting what the file holds already (the rest at the next writes).
  if (share !== Infinity) shares.sync(fd)
  /** The file's size, each key's share counted up to it first (when shares are bounded). */
  const sizeOf = (to: number): number => share === Infinity ? fstatSync(to).size : shares.sync(to)
  const quota = (key: string, bytes: number): void => {
    if (shares.used(key) + bytes > share) throw new AuditQuotaError(String(share), String(maxBytes))
  }
  const append = (to: number, e: AuditRecord, key: string): void => {
    const line = Buffer.from(`${torn ? '\n' : ''}${JSON.stringify(e)}\n`)
    // The file's size asked each time (one fstat): `keatrail serve` beside `keatrail run` appends
    // to the same file, and a copytruncate shrinks it unseen.
    const before = maxBytes === Infinity ? 0 : sizeOf(to)
    if (before + line.length > maxBytes) throw new Error(`the audit log reached api.auditLogMaxBytes (${maxBytes} bytes): rotate it (logrotate, then SIGHUP)`)
    quota(key, line.length)
    let done = 0
    try {
      while (done < line.length) {
        const n = writeSync(to, line, done, line.length - done)
        if (n <= 0) throw new Error('write(2) wrote nothing')
        done += n
      }
      torn = false
      if (share !== Infinity) shares.appended(to, key, line, before, 'route' in e ? e.batch : undefined)
    } catch (err) {
      // A full disk takes the first part of a line and refuses the rest: take that part back,
      // so the file holds whole entries only (an auditor parses each line).
      if (done > 0) {
        try { ftruncateSync(to, fstatSync(to).size - done) } catch { torn = true }
      }
      throw err
    }
  }
  /** The file's size now (closed: what the path's file has; none: 0). */
  const size = (): number => {
    if (fd >= 0) return fstatSync(fd).size
    try { return statSync(path).size } catch { return 0 }
  }
  const room = (): number => maxBytes === Infinity ? Infinity : maxBytes - size()
  return {
    full: () => room() < AUDIT_ENTRY_ROOM,
    room,
    write: (e, key) => {
      if (fd >= 0) { append(fd, e, key); return }
      const once = openRegular(path)
      try { append(once, e, key) } finally { closeSync(once) }
    },
    admit: (key, bytes) => {
      if (share === Infinity || fd < 0) return
      shares.sync(fd)
      quota(key, bytes)
    },
    reopen: () => {
      if (fd < 0) return
      const next = openRegular(path)
      const old = fd
      fd = next
      torn = false
      closeSync(old)
    },
    close: () => { if (fd >= 0) { closeSync(fd); fd = -1 } }
  }
}

/** The least share of the audit log a key may be given: ~70 reads' entries. */
const MIN_KEY_SHARE = 16_384

/** Builds the app with an audit log file, checks exposure, listens; resolves to the app and its URL. */
export async function serveApi (store: Store, api: unknown, dataDir: string, status: ServiceStatus, registry?: Registry, deadLetters?: DeadLetterStore, logger?: FastifyBaseLogger): Promise<{ app: FastifyInstance, url: string }> {
  const cfg = apiConfigSchema.parse(api ?? {})
  checkExposure(cfg)
  const auditPath = cfg.auditLog ?? `${dataDir}/audit.log`
  const keyShare = cfg.auditKeyShare ?? (cfg.keys.length > 1 ? 0.5 : 1)
  if (keyShare < 1 && cfg.auditLogMaxBytes * keyShare < MIN_KEY_SHARE) throw new ConfigInvalidError('api.auditKeyShare', `${keyShare} of api.auditLogMaxBytes (${cfg.auditLogMaxBytes}) leaves a key less than ${MIN_KEY_SHARE} bytes of the audit log: raise either`)
  const audit = openAuditLog(auditPath, cfg.auditLogMaxBytes, keyShare)
  let app: FastifyInstance
  try {
    app = await buildApp({
      store, api: cfg, status, ...(registry === undefined ? {} : { registry }), ...(deadLetters === undefined ? {} : { deadLetters }), ...(logger === undefined ? {} : { loggerInstance: logger }),
      // Reads reveal who had which address: keep who asked, append-only; a read whose entry
      // cannot be written is refused (the app answers 503).
      audit: audit.write,
      auditAdmit: audit.admit,
      auditRoom: audit.room
    })
  } catch (err) {
    audit.close()
    throw err
  }
  // logrotate's rename-and-create leaves the old file open here: SIGHUP (its postrotate) opens
  // the path again. copytruncate needs nothing: every write appends (O_APPEND), after the cut.
  const served = app
  const reopen = (): void => {
    try {
      audit.reopen()
      const log = logger ?? served.log
      log.info({ path: auditPath }, 'Audit log reopened (SIGHUP).')
    } catch (err) {
      served.log.error({ code: AUDIT_LOG_CODES.reopen, path: auditPath, error: (err as Error).message }, 'Could not reopen the audit log on SIGHUP: entries still go to the file that was open.')
    }
  }
  // Full already (a bound lowered, a rotation that did not happen): said at start, not only per refused read.
  if (audit.full()) served.log.error({ code: AUDIT_LOG_CODES.write, path: auditPath, maxBytes: cfg.auditLogMaxBytes }, 'The audit log has no room left under api.auditLogMaxBytes: every data read is refused (503) until it is rotated (logrotate, then SIGHUP).')
  process.on('SIGHUP', reopen)
  app.addHook('onClose', async () => { process.off('SIGHUP', reopen); audit.close() })
  try {
    const url = await app.listen({ host: cfg.host, port: cfg.port })
    return { app, url }
  } catch (err) {
    await app.close()
    throw err
  }
}
