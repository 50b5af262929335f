import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Option, type Command } from 'commander'
import { dashboardFiles } from '../dashboards/keatrail.js'
import { importSavedObjects, kibanaVersion, type KibanaOptions } from '../kibana/import.js'
import { packageRoot } from '../paths.js'
import { setupElasticsearch } from '../store/elasticsearch/setup.js'
import type { ElasticsearchStore } from '../store/elasticsearch/store.js'
import { resolveConfig } from '../app/config.js'
import { readConfigDocument } from '../config/config.js'
import { asLog, createLogger } from '../app/logger.js'
import { openStore, type OpenedStore } from '../app/store.js'
import { UsageError } from '../errors.js'
import { addConfigOption } from './store-options.js'
import { intAtLeast } from './options.js'
import type { CliIo } from './parse.js'

const ENGINES = ['elasticsearch', 'opensearch']

/** The store type a config file names (undefined without a file, or when it names none). */
function configStoreType (file: string | undefined): string | undefined {
  if (file === undefined) return undefined
  const store = (readConfigDocument(file) as { store?: { type?: unknown } } | null)?.store
  return typeof store?.type === 'string' ? store.type : undefined
}

interface SetupOptions {
  config?: string
  logLevel?: string
  es?: string
  store?: 'elasticsearch' | 'opensearch'
  esNamespace?: string
  kibana?: string
  space?: string
  retentionDays: number
}

export function registerSetup (program: Command, io: CliIo): void {
  addConfigOption(program.command('setup'))
    .description('Install keatrail\'s templates and indices in Elasticsearch and its dashboards in Kibana (idempotent)')
    .option('--es <url>', 'Elasticsearch URL, overriding store.url of --config (or KEATRAIL_ES_URL; credentials: KEATRAIL_ES_USERNAME/KEATRAIL_ES_PASSWORD or KEATRAIL_ES_API_KEY)')
    .addOption(new Option('--store <kind>', 'the engine at --es: elasticsearch or opensearch (default: store.type of --config, else elasticsearch)').choices(['elasticsearch', 'opensearch']))
    .option('--es-namespace <ns>', 'data stream namespace: logs-kea.dhcp4-<ns> (default: default)')
    .option('--kibana <url>', 'Kibana URL: import the dashboards (credentials: KEATRAIL_KIBANA_USERNAME/PASSWORD or KEATRAIL_KIBANA_API_KEY, else the Elasticsearch ones)')
    .option('--space <space>', 'Kibana space to import into', 'default')
    .addOption(new Option('--retention-days <n>', 'with ILM: delete event indices after this many days').argParser(intAtLeast(1)).default(90))
    .action(async (o: SetupOptions) => {
      const env = process.env
      const cfg = resolveConfig(o.config, {
        // Without --store, a config file's own search engine (its settings kept); else elasticsearch.
        ...(o.store !== undefined ? { store: o.store } : ENGINES.includes(configStoreType(o.config) ?? '') ? {} : { store: 'elasticsearch' }),
        ...(o.es === undefined ? {} : { esUrl: o.es }),
        ...(o.esNamespace === undefined ? {} : { esNamespace: o.esNamespace }),
        ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel })
      })
      if (cfg.store.type === 'sqlite') throw new UsageError('setup installs Elasticsearch or OpenSearch templates: give --es (with --store opensearch for OpenSearch) or a config whose store is elasticsearch or opensearch')
      const url = cfg.store.url
      const namespace = cfg.store.namespace
      // setup installs the templates itself (and says which changed): the store is opened without.
      const opened = await openStore(cfg, { mode: 'read', log: asLog(createLogger(cfg.log, io.stderr)), templates: false }) as OpenedStore
      const es = opened.store as ElasticsearchStore
      try {
        const r = await setupElasticsearch(es, namespace, o.retentionDays)
        io.stdout.write(`${cfg.store.type} ${url}:\n` +
          `  templates: ${r.changed.length === 0 ? 'all up to date' : `installed or updated ${r.changed.join(', ')}`}${r.unchanged.length > 0 && r.changed.length > 0 ? `; unchanged ${r.unchanged.join(', ')}` : ''}\n` +
          `  indices: ${r.created.length === 0 ? 'all exist' : `created ${r.created.join(', ')}`}\n` +
          r.features.map((f) => `  ${f}\n`).join(''))
      } finally {
        await opened.close()
      }
      if (o.kibana === undefined) return
      const kib: KibanaOptions = {
        url: o.kibana,
        space: o.space,
        ...(env.KEATRAIL_KIBANA_API_KEY ?? env.KEATRAIL_ES_API_KEY) === undefined ? {} : { apiKey: (env.KEATRAIL_KIBANA_API_KEY ?? env.KEATRAIL_ES_API_KEY) as string },
        ...(env.KEATRAIL_KIBANA_USERNAME ?? env.KEATRAIL_ES_USERNAME) === undefined ? {} : { username: (env.KEATRAIL_KIBANA_USERNAME ?? env.KEATRAIL_ES_USERNAME) as string, password: env.KEATRAIL_KIBANA_PASSWORD ?? env.KEATRAIL_ES_PASSWORD ?? '' }
      }
      const version = await kibanaVersion(kib)
      io.stdout.write(`kibana ${o.kibana} (${version}), space ${o.space ?? 'default'}:\n`)
      for (const file of dashboardFiles().keys()) {
        const r = await importSavedObjects(kib, file, readFileSync(join(packageRoot(), 'dashboards', file), 'utf8'))
        io.stdout.write(`  ${file}: ${r.imported} objects imported (overwrite)\n`)
      }
    })
}
