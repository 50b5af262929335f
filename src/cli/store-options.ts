import { Option, type Command } from 'commander'
import { resolveConfig, type Overrides } from '../app/config.js'
import { asLog, createLogger, LOG_LEVELS } from '../app/logger.js'
import { withStore, type OpenedStore, type StoreMode } from '../app/store.js'
import { storeConfigSchema, type KeatrailConfig } from '../config/config.js'
import type { CliIo } from './parse.js'

/** The store kinds --store accepts: the `type`s of the config's store union. */
export const STORE_KINDS = storeConfigSchema.options.map((o) => o.shape.type.value)

export interface StoreOptions {
  config?: string
  store?: string
  dataDir?: string
  esUrl?: string
  esNamespace?: string
  logLevel?: string
}

/**
 * The options every command that opens a store takes (import, lease, serve, deadletter…). None
 * has a default here: what is not given comes from --config, then from the config's defaults,
 * so a flag and the file never disagree about what "not given" means.
 */
export function addStoreOptions (cmd: Command): Command {
  return addConfigOption(cmd)
    .addOption(new Option('--store <kind>', 'overrides store.type of the config (default sqlite, embedded)').choices(STORE_KINDS))
    .option('--data-dir <dir>', 'where the SQLite database and the dead-letter store live: overrides dataDir (default ./data)')
    .option('--es-url <url>', 'Elasticsearch URL (or KEATRAIL_ES_URL; credentials: KEATRAIL_ES_USERNAME/KEATRAIL_ES_PASSWORD or KEATRAIL_ES_API_KEY)')
    .option('--es-namespace <ns>', 'data stream namespace: logs-kea.dhcp4-<ns> (default: default)')
}

/** --config and --log-level: the same meaning in every command. */
export function addConfigOption (cmd: Command): Command {
  return cmd
    .option('--config <file>', 'keatrail.yaml: its store, dataDir, api and log settings apply; flags override them')
    .option('--log-level <level>', `keatrail's own log: ${LOG_LEVELS.join(', ')} (overrides log.level)`)
}

export function storeOverrides (o: StoreOptions): Overrides {
  return {
    ...(o.dataDir === undefined ? {} : { dataDir: o.dataDir }),
    ...(o.store === undefined ? {} : { store: o.store }),
    ...(o.esUrl === undefined ? {} : { esUrl: o.esUrl }),
    ...(o.esNamespace === undefined ? {} : { esNamespace: o.esNamespace }),
    ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel })
  }
}

/** The effective config of a command from its --config and flags. */
export function commandConfig (o: StoreOptions, extra: Overrides = {}, fallback?: () => unknown): KeatrailConfig {
  return resolveConfig(o.config, { ...storeOverrides(o), ...extra }, fallback)
}

/** The store of a command's config, with the command's logger; `read` fails when it does not exist (never creates one). */
export async function withCommandStore<T> (o: StoreOptions, io: CliIo, mode: StoreMode, fn: (opened: OpenedStore) => Promise<T>, adjust: (cfg: KeatrailConfig) => KeatrailConfig = (c) => c): Promise<T> {
  const cfg = adjust(commandConfig(o))
  return await withStore(cfg, { mode, log: asLog(createLogger(cfg.log, io.stderr)) }, fn)
}
