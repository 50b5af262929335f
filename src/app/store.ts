import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { KeatrailConfig } from '../config/config.js'
import { DataDirError, LOG_CODES, StoreAuthError, StoreDistributionError, StoreMissingError, StoreReadError, withCause, type CodedError } from '../errors.js'
import type { Log } from '../pipeline/types.js'
import { DeadLetterStore } from '../store/deadletter.js'
import { ENGINE_NAMES, engineOfError } from '../store/elasticsearch/engine.js'
import { ElasticsearchStore, eventsPattern } from '../store/elasticsearch/store.js'
import { SqliteStore } from '../store/sqlite/store.js'
import { SqliteRowStore } from '../store/sqlite/row-store.js'
import type { Store } from '../store/types.js'
import { lockDataDir } from './lock.js'
import { withoutCredentials } from '../credentials.js'
import { boundedText } from './logger.js'
import { leaseSetup } from '../leases/config.js'
import type { LeaseDomains } from '../leases/domains.js'

/**
 * write: run and import, which may create the store (and its data directory). read: every other
 * command: a store that does not exist is an error naming where it was looked for, never an
 * empty store made on the spot (a typo in --data-dir would answer "nobody held it").
 */
export type StoreMode = 'write' | 'read'

export interface OpenedStore {
  store: Store
  /** Events the store rejected; absent for a reader when none was ever written. */
  deadLetters: DeadLetterStore | undefined
  close: () => Promise<void>
}

export interface StoreContext {
  mode: StoreMode
  log: Log
  /** Elasticsearch: wait (with backoff, logged) for the cluster to install templates; false when `signal` aborted meanwhile. */
  waitForCluster?: AbortSignal
  /** false: open Elasticsearch without looking at it (`keatrail setup` installs the templates itself and reports what changed). */
  templates?: boolean
  /**
   * A writer whose caller holds the data directory's lock already (`keatrail run` takes it
   * before its checkpoints and sources). Every other writer gets it here, released by close().
   */
  lockHeld?: boolean
}

/**
 * Creates the data directory private (0700) when it does not exist yet: it holds who had which
 * address when, and the API's audit log. mkdir's mode is cut by the umask but never widened,
 * hence the chmod; bin/keatrail.js also sets umask 077, so files in it are 0600. An existing
 * directory keeps the mode its operator gave it.
 */
export function ensureDataDir (dir: string): void {
  if (existsSync(dir)) return
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    chmodSync(dir, 0o700)
  } catch (err) {
    throw new DataDirError(dir, (err as Error).message)
  }
}

/** Where the SQLite store of a config lives. */
export function sqlitePath (cfg: KeatrailConfig): string | undefined {
  return cfg.store.type === 'sqlite' ? cfg.store.path ?? join(cfg.dataDir, 'keatrail.db') : undefined
}

export function deadLetterPath (cfg: KeatrailConfig): string {
  return join(cfg.dataDir, 'deadletter.db')
}

/** The dead-letter store; a reader gets an error naming the path when there is none. */
export function openDeadLetters (cfg: KeatrailConfig, mode: StoreMode): DeadLetterStore {
  const path = deadLetterPath(cfg)
  if (mode === 'read' && !existsSync(path)) throw new StoreMissingError(path, `no dead-letter store (check --data-dir / dataDir; keatrail run and import create it)`)
  if (mode === 'write') ensureDataDir(cfg.dataDir)
  return new DeadLetterStore(path)
}

/** Lease wipes a store could not apply (more than MAX_WIPES): logged, never silent (keatrail_lease_wipes_ignored_total counts them). */
function wipesIgnored (ctx: StoreContext): (scope: string, n: number, from: number, to: number) => void {
  return (scope, n, from, to) => {
    ctx.log.error(LOG_CODES.leaseWipesIgnored, 'Lease wipes not applied: the store keeps its bound of wipes already; their time is recorded as a collection gap.',
      { server: scope, wipes: n, from: new Date(from).toISOString(), to: new Date(to).toISOString() })
  }
}

/**
 * A store's lease history derived with other lease domains than this process has: said, since
 * its servers' lines now go to other histories (`keatrail import` without the `--config` that
 * `run` has splits an HA pair's history again). Then recorded: the change is the operator's.
 */
function checkDomains (leases: SqliteStore['leases'], domains: LeaseDomains, ctx: StoreContext): void {
  const was = leases.domainsRecorded()
  const now = domains.signature()
  if (was === now) return
  if (was !== undefined) {
    const msg = 'This store\'s lease history was derived with other lease domains (leases.domains) than now: from here on their servers\' lines go to other histories. Give every writer (run, import) the same leases.domains (--config).'
    const fields = { before: JSON.parse(was) as unknown, now: JSON.parse(now) as unknown }
    if (ctx.log.warn !== undefined) ctx.log.warn(LOG_CODES.leaseDomainsChanged, msg, fields)
    else ctx.log.error(LOG_CODES.leaseDomainsChanged, msg, fields)
  }
  leases.recordDomains(now)
}

/**
 * The one place keatrail constructs a store from its config. Returns undefined only when
 * `waitForCluster` aborted before Elasticsearch answered.
 */
export async function openStore (cfg: KeatrailConfig, ctx: StoreContext): Promise<OpenedStore | undefined> {
  if (ctx.mode === 'read') {
    // Checked before anything is opened: SQLite and the dead-letter store create their files.
    const path = sqlitePath(cfg)
    if (path !== undefined && !existsSync(path)) throw new StoreMissingError(path, 'no database there (check --data-dir / dataDir or store.path; keatrail run and import create it)')
  }
  // One writer per data directory, whichever command writes: `keatrail import` beside a running
  // service would wait on (and stall) its writes and die with SQLITE_BUSY. Refused with
  // KEATRAIL_ERR_DATADIR_LOCKED naming the running pid; stop the service to backfill.
  let unlock = (): void => {}
  if (ctx.mode === 'write') {
    ensureDataDir(cfg.dataDir)
    if (ctx.lockHeld !== true) unlock = lockDataDir(cfg.dataDir)
  }
  let deadLetters: DeadLetterStore | undefined
  try {
    const dlPath = deadLetterPath(cfg)
    deadLetters = ctx.mode === 'write' || existsSync(dlPath) ? new DeadLetterStore(dlPath) : undefined
  } catch (err) {
    unlock()
    throw err
  }
  const closeAll = async (store?: Store): Promise<void> => {
    try {
      await store?.close()
      deadLetters?.close()
    } finally {
      unlock()
    }
  }
  const s = cfg.store
  try {
    if (s.type === 'sqlite') {
      const [subnets, domains] = leaseSetup(cfg.leases)
      const { type: _type, retention, path: _path, ...rest } = s
      const store = new (rest.layout === 'rows' ? SqliteRowStore : SqliteStore)({
        ...rest,
        path: sqlitePath(cfg) as string,
        retention: { ...(retention.maxAgeDays === undefined ? {} : { maxAgeDays: retention.maxAgeDays }), ...(retention.maxSizeMiB === undefined ? {} : { maxSizeMiB: retention.maxSizeMiB }) }
      }, subnets, domains)
      // Counted (keatrail_lease_history_repaired_keys_total) and logged, never silent.
      store.leases.onRepair = (key, err, fromEvents) => {
        ctx.log.error(LOG_CODES.leaseHistoryDamaged, fromEvents
          ? 'A lease\'s stored history could not be read; rebuilt from the stored events.'
          : 'A lease\'s stored history could not be read; started again from the events being written (the row layout cannot read it back from its events).', { key, error: err })
      }
      store.leases.onWipesIgnored = wipesIgnored(ctx)
      if (ctx.mode === 'write') checkDomains(store.leases, domains, ctx)
      return { store, deadLetters, close: async () => { await closeAll(store) } }
    }
    const { type: distribution, ...esConfig } = s
    const es = new ElasticsearchStore(esConfig, {
      distribution,
      ...(deadLetters === undefined ? {} : { deadLetters }),
      onRetry: (err, attempt, waitMs) => { ctx.log.error(LOG_CODES.storeWrite, `${ENGINE_NAMES[distribution]} write failed; retrying.`, { attempt, waitMs, error: err }) }
    })
    const [subnets, domains] = leaseSetup(cfg.leases)
    es.domains = domains
    es.leases.subnets = subnets
    es.leases.onWipesIgnored = wipesIgnored(ctx)
    const opened = { store: es, deadLetters, close: async () => { await closeAll(es) } }
    try {
      if (ctx.mode === 'read') {
        // A reader changes nothing in the cluster, and a namespace without keatrail's data
        // (a typo in --es-namespace) is an error, not an empty answer.
        if (ctx.templates !== false) await requireEvents(es, esConfig.url, esConfig.namespace)
        return opened
      }
      if (ctx.waitForCluster === undefined) {
        await es.ensureTemplates()
        return opened
      }
    } catch (err) {
      await es.close()
      throw err
    }
    if (await templatesInPlace(es, esConfig.url, ctx.log, ctx.waitForCluster)) return opened
    await opened.close()
    return undefined
  } catch (err) {
    deadLetters?.close()
    unlock()
    throw err
  }
}

/**
 * A cluster's 401 (credentials not accepted) or 403 (accepted, but not allowed what keatrail
 * asked) as the coded error an operator acts on, with where to look; undefined for any other
 * error. `url`: the configured one, when the error does not name the node.
 */
export function storeAuthError (err: unknown, url?: string): CodedError | undefined {
  const engine = engineOfError(err)
  const meta = (err as { meta?: { statusCode?: unknown, body?: unknown } }).meta
  const status = meta?.statusCode
  if (engine === undefined || (status !== 401 && status !== 403)) return undefined
  const where = clusterWhere(err, url)
  const error = (meta?.body as { error?: { type?: unknown, reason?: unknown } } | undefined)?.error
  const said = typeof error === 'object' && error !== null
    ? [error.type, error.reason].filter((x) => typeof x === 'string').join(': ')
    : typeof error === 'string' ? error : (err as Error).message
  const hint = status === 401
    ? 'the credentials were not accepted (check KEATRAIL_ES_USERNAME and KEATRAIL_ES_PASSWORD or store.username and store.password, a user:password in the URL, or KEATRAIL_ES_API_KEY / store.apiKey)'
    : 'the credentials were accepted but may not do this (the user or API key needs cluster health and templates, and the logs-kea.* and keatrail-* indices)'
  return new StoreAuthError(ENGINE_NAMES[engine], where, `HTTP ${status}, ${hint}${said === '' ? '' : ` (${boundedText(said, 300)})`}`)
}

/**
 * Where a search engine client's error happened, for an operator: the node it names, else the
 * configured `url`, never with user and password.
 */
export function clusterWhere (err: unknown, url?: string): string {
  const node = (err as { meta?: { meta?: { connection?: { url?: unknown } | null } } }).meta?.meta?.connection?.url
  return node !== undefined && node !== null ? withoutCredentials(String(node)) : url !== undefined ? withoutCredentials(url) : 'its configured URL'
}

/** Fails with the URL and namespace when the cluster holds no keatrail events for that namespace. */
async function requireEvents (es: ElasticsearchStore, url: string, namespace: string): Promise<void> {
  let found: { indices: unknown[], data_streams: unknown[] }
  try {
    await es.client.verify()
    found = await es.client.indices.resolveIndex({ name: eventsPattern(namespace), expand_wildcards: 'all' })
  } catch (err) {
    if (err instanceof StoreDistributionError) throw err
    // A wrong password is said as such; the URL never with its user and password (--es-url
    // http://elastic:PW@host printed the password).
    throw storeAuthError(err, url) ?? withCause(new StoreReadError(es.client.distribution, `${withoutCredentials(url)}: ${boundedText((err as Error).message)}`), err)
  }
  if (found.indices.length === 0 && found.data_streams.length === 0) {
    throw new StoreMissingError(`${withoutCredentials(url)} namespace ${namespace}`, `no ${eventsPattern(namespace)} data streams (check --es-namespace / store.namespace; keatrail run and import create them)`)
  }
}

/**
 * Elasticsearch may not be up yet when keatrail starts (both started at boot, or the cluster is
 * down): wait for it instead of exiting. No source starts before the templates are in place, or
 * the first write would create indices with default mappings. Returns false when `signal`
 * aborted meanwhile (closing the store ends the wait).
 */
async function templatesInPlace (es: ElasticsearchStore, url: string, log: Log, signal: AbortSignal): Promise<boolean> {
  let attempts = 0
  const onAbort = (): void => { void es.close() }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    await es.ensureTemplatesWaiting((err, attempt, waitMs) => {
      attempts = attempt
      // Credentials refused is said as such (it is no outage), and still waited for: a cluster
      // whose security index is still starting refuses known users too (boot order).
      const auth = storeAuthError(err, url)
      if (auth !== undefined) log.error(auth.code, `${auth.message}; waiting for it.`, { attempt, waitMs })
      else log.error(LOG_CODES.storeWrite, `${engineName(es)} not reachable to check templates; waiting for it.`, { attempt, waitMs, error: err })
    })
    if (attempts > 0) log.info(`${engineName(es)} reachable; templates in place.`, { attempts: attempts + 1 })
    return true
  } catch (err) {
    if (signal.aborted) return false
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

function engineName (es: ElasticsearchStore): string {
  return ENGINE_NAMES[es.client.distribution]
}

/** Opens the config's store, runs `fn` with it, and closes it whatever happens. */
export async function withStore<T> (cfg: KeatrailConfig, ctx: StoreContext, fn: (opened: OpenedStore) => Promise<T>): Promise<T> {
  const opened = await openStore(cfg, ctx) as OpenedStore
  try {
    return await fn(opened)
  } finally {
    await opened.close()
  }
}
