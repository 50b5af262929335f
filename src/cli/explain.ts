import { resolve, sep } from 'node:path'
import { clusterWhere, storeAuthError } from '../app/store.js'
import { ApiListenError, ConfigInvalidError, DataDirError, StoreUnreachableError, type CodedError } from '../errors.js'
import { ENGINE_NAMES, engineOfError } from '../store/elasticsearch/engine.js'

/** What the command that failed was working on, for naming it in the message. */
export interface ErrorContext {
  /** The data directory the command used, when it has one. */
  dataDir?: string | undefined
  /** The Elasticsearch URL it was given, when it was. */
  esUrl?: string | undefined
}

const ES_UNREACHABLE = new Set(['ConnectionError', 'TimeoutError', 'NoLivingConnectionsError'])
const FS_DENIED = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'ENOTDIR', 'EEXIST'])

/**
 * Turns an error a dependency raised without a keatrail code (the Elasticsearch client,
 * better-sqlite3, node:fs, net's listen, zod) into the coded one-line error an operator can act
 * on: what keatrail was trying to reach or open, where, and the cause. Returns undefined for
 * anything else, which stays an internal error (a bug to report).
 */
export function explainError (err: unknown, ctx: ErrorContext): CodedError | undefined {
  if (!(err instanceof Error)) return undefined
  const e = err as Error & { code?: unknown, path?: unknown, syscall?: unknown, address?: unknown, port?: unknown }
  if (ES_UNREACHABLE.has(e.name)) {
    return new StoreUnreachableError(ENGINE_NAMES[engineOfError(e) ?? 'elasticsearch'], clusterWhere(e, ctx.esUrl), `${e.message} (is it running, and is the URL right?)`)
  }
  // The cluster answered 401/403: the operator's credentials, not a keatrail bug.
  const refused = storeAuthError(e, ctx.esUrl)
  if (refused !== undefined) return refused
  if (e.syscall === 'listen' && typeof e.code === 'string') {
    const at = typeof e.port === 'number' ? `${typeof e.address === 'string' ? e.address : ''}:${e.port}` : 'its address'
    const why = e.code === 'EADDRINUSE' ? 'the port is in use (another keatrail or service?): choose another with --port' : e.message
    return new ApiListenError(at, why)
  }
  if (e.name === 'SqliteError' && typeof e.code === 'string' && /^SQLITE_(CANTOPEN|READONLY|PERM|FULL|IOERR)/.test(e.code)) {
    const dir = ctx.dataDir === undefined ? 'of this command' : resolve(ctx.dataDir)
    return new DataDirError(dir, `${e.code}: ${e.message} (can this user create and write files there?)`)
  }
  if (typeof e.code === 'string' && FS_DENIED.has(e.code) && typeof e.path === 'string' && ctx.dataDir !== undefined) {
    const dir = resolve(ctx.dataDir)
    const path = resolve(e.path)
    if (path === dir || path.startsWith(dir + sep) || dir.startsWith(path + sep)) return new DataDirError(dir, e.message)
  }
  if (e.name === 'ZodError' && Array.isArray((e as { issues?: unknown }).issues)) {
    // A value a schema refused after the command line was read (a config merged with options).
    const issue = (e as unknown as { issues: Array<{ path: PropertyKey[], message: string }> }).issues[0]
    return new ConfigInvalidError(issue?.path.map(String).join('.') || '(top level)', issue?.message ?? e.message)
  }
  return undefined
}
