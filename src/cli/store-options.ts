import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import { DeadLetterStore } from '../store/deadletter.js'
import { ElasticsearchStore } from '../store/elasticsearch/store.js'
import { SqliteStore } from '../store/sqlite/store.js'
import type { Store } from '../store/types.js'

export interface StoreOptions {
  store?: string
  dataDir?: string
  esUrl?: string
  esNamespace?: string
}

/** The options every command that opens a store takes (import, lease, serve, …). */
export function addStoreOptions (cmd: Command): Command {
  return cmd
    .option('--store <kind>', 'sqlite (embedded, default) or elasticsearch', 'sqlite')
    .option('--data-dir <dir>', 'where the SQLite database and the dead-letter store live', './data')
    .option('--es-url <url>', 'Elasticsearch URL (credentials: KEATRAIL_ES_USERNAME/KEATRAIL_ES_PASSWORD or KEATRAIL_ES_API_KEY)')
    .option('--es-namespace <ns>', 'data stream namespace: logs-kea.dhcp4-<ns>', 'default')
}

export interface OpenedStore {
  store: Store
  deadLetters: DeadLetterStore
  close: () => Promise<void>
}

/**
 * Creates the data directory private (0700) when it does not exist yet: it holds who had which
 * address when, and the API's audit log. mkdir's mode is cut by the umask but never widened,
 * hence the chmod; bin/keatrail.js also sets umask 077, so files in it are 0600. An existing
 * directory keeps the mode its operator gave it.
 */
export function ensureDataDir (dir: string): void {
  if (existsSync(dir)) return
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
}

export async function openStore (o: StoreOptions): Promise<OpenedStore> {
  const dataDir = o.dataDir ?? './data'
  ensureDataDir(dataDir)
  const deadLetters = new DeadLetterStore(join(dataDir, 'deadletter.db'))
  let store: Store
  if ((o.store ?? 'sqlite') === 'sqlite') {
    store = new SqliteStore({ path: join(dataDir, 'keatrail.db') })
  } else if (o.store === 'elasticsearch') {
    const url = o.esUrl ?? process.env.KEATRAIL_ES_URL
    if (url === undefined) throw new UsageError('--store elasticsearch needs --es-url (or KEATRAIL_ES_URL)')
    const es = new ElasticsearchStore({
      url,
      namespace: o.esNamespace ?? 'default',
      ...(process.env.KEATRAIL_ES_USERNAME === undefined ? {} : { username: process.env.KEATRAIL_ES_USERNAME, password: process.env.KEATRAIL_ES_PASSWORD ?? '' }),
      ...(process.env.KEATRAIL_ES_API_KEY === undefined ? {} : { apiKey: process.env.KEATRAIL_ES_API_KEY })
    }, { deadLetters })
    await es.ensureTemplates()
    store = es
  } else {
    throw new UsageError(`--store must be sqlite or elasticsearch, not ${JSON.stringify(o.store)}`)
  }
  return {
    store,
    deadLetters,
    close: async () => { await store.close(); deadLetters.close() }
  }
}

/** Opens the store the options name, runs `fn` with it, and closes it whatever happens. */
export async function withStore<T> (o: StoreOptions, fn: (opened: OpenedStore) => Promise<T>): Promise<T> {
  const opened = await openStore(o)
  try {
    return await fn(opened)
  } finally {
    await opened.close()
  }
}
