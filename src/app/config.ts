import { parseConfig, readConfigDocument, type KeatrailConfig } from '../config/config.js'
import { UsageError } from '../errors.js'

/** What command-line flags may set: each overrides the config file's field of the same meaning. */
export interface Overrides {
  dataDir?: string
  /** --store: switches the store kind (the file's settings of the other kind do not apply). */
  store?: string
  esUrl?: string
  esNamespace?: string
  api?: { enabled?: boolean, host?: string, port?: number, insecure?: boolean }
  logLevel?: string
}

type Doc = Record<string, unknown>

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Elasticsearch credentials and URL from the environment (so they stay out of keatrail.yaml and
 * the process list): the one place they are read. They override the file's fields.
 */
function esFromEnv (env: NodeJS.ProcessEnv): Doc {
  const out: Doc = {}
  if (env.KEATRAIL_ES_USERNAME !== undefined) out.username = env.KEATRAIL_ES_USERNAME
  if (env.KEATRAIL_ES_PASSWORD !== undefined) out.password = env.KEATRAIL_ES_PASSWORD
  if (env.KEATRAIL_ES_API_KEY !== undefined) out.apiKey = env.KEATRAIL_ES_API_KEY
  return out
}

/** The config document with the flags applied (still to be validated). */
export function applyOverrides (doc: unknown, o: Overrides, env: NodeJS.ProcessEnv = process.env): Doc {
  const out: Doc = isObject(doc) ? { ...doc } : {}
  if (o.dataDir !== undefined) out.dataDir = o.dataDir
  const fileStore: Doc = isObject(out.store) ? out.store : { type: 'sqlite' }
  // Elasticsearch and OpenSearch take the same settings: --store switching between them keeps
  // the file's (its URL, namespace, nodes, credentials); to or from sqlite they do not apply.
  const engines = ['elasticsearch', 'opensearch']
  let store: Doc = o.store === undefined || o.store === fileStore.type
    ? { ...fileStore }
    : engines.includes(o.store) && engines.includes(String(fileStore.type)) ? { ...fileStore, type: o.store } : { type: o.store }
  if (store.type !== 'sqlite' && store.type !== 'elasticsearch' && store.type !== 'opensearch') throw new UsageError(`--store must be sqlite, elasticsearch or opensearch, not ${JSON.stringify(store.type)}`)
  if (store.type !== 'sqlite') {
    store = { ...store, ...esFromEnv(env) }
    const url = o.esUrl ?? store.url ?? env.KEATRAIL_ES_URL
    if (url === undefined) throw new UsageError(`the ${String(store.type)} store needs a URL: --es-url, store.url in the config or KEATRAIL_ES_URL`)
    store.url = url
    if (o.esNamespace !== undefined) store.namespace = o.esNamespace
  } else if (o.esUrl !== undefined || o.esNamespace !== undefined) {
    throw new UsageError('--es-url and --es-namespace apply to the elasticsearch and opensearch stores: add --store elasticsearch (or opensearch)')
  }
  out.store = store
  const api = Object.fromEntries(Object.entries(o.api ?? {}).filter(([, v]) => v !== undefined))
  if (Object.keys(api).length > 0) out.api = { ...(isObject(out.api) ? out.api : {}), ...api }
  if (o.logLevel !== undefined) out.log = { ...(isObject(out.log) ? out.log : {}), level: o.logLevel }
  return out
}

/**
 * The effective config of a command: `--config FILE` (or `fallback` without one), then the
 * flags. Every command reads its config here, so `--config` means the same to each.
 */
export function resolveConfig (file: string | undefined, o: Overrides, fallback: () => unknown = () => ({})): KeatrailConfig {
  // The file alone first: its mistakes are named with the file's name.
  const doc = file === undefined ? fallback() : readConfigDocument(file)
  if (file !== undefined) parseConfig(doc, file)
  return parseConfig(applyOverrides(doc, o), file === undefined ? 'options' : `${file} with the command-line options`)
}
