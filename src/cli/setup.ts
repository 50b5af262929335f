import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { dashboardFiles } from '../dashboards/keatrail.js'
import { importSavedObjects, kibanaVersion, type KibanaOptions } from '../kibana/import.js'
import { packageRoot } from '../paths.js'
import { setupElasticsearch } from '../store/elasticsearch/setup.js'
import { ElasticsearchStore } from '../store/elasticsearch/store.js'
import type { CliIo } from './parse.js'

interface SetupOptions {
  es: string
  esNamespace: string
  kibana?: string
  space?: string
  retentionDays: string
}

export function registerSetup (program: Command, io: CliIo): void {
  program.command('setup')
    .description('Install keatrail\'s templates and indices in Elasticsearch and its dashboards in Kibana (idempotent)')
    .requiredOption('--es <url>', 'Elasticsearch URL (credentials: KEATRAIL_ES_USERNAME/KEATRAIL_ES_PASSWORD or KEATRAIL_ES_API_KEY)')
    .option('--es-namespace <ns>', 'data stream namespace: logs-kea.dhcp4-<ns>', 'default')
    .option('--kibana <url>', 'Kibana URL: import the dashboards (credentials: KEATRAIL_KIBANA_USERNAME/PASSWORD or KEATRAIL_KIBANA_API_KEY, else the Elasticsearch ones)')
    .option('--space <space>', 'Kibana space to import into', 'default')
    .option('--retention-days <n>', 'with ILM: delete event indices after this many days', '90')
    .action(async (o: SetupOptions) => {
      const env = process.env
      const es = new ElasticsearchStore({
        url: o.es,
        namespace: o.esNamespace,
        ...(env.KEATRAIL_ES_USERNAME === undefined ? {} : { username: env.KEATRAIL_ES_USERNAME, password: env.KEATRAIL_ES_PASSWORD ?? '' }),
        ...(env.KEATRAIL_ES_API_KEY === undefined ? {} : { apiKey: env.KEATRAIL_ES_API_KEY })
      })
      try {
        const r = await setupElasticsearch(es, o.esNamespace, Number(o.retentionDays))
        io.stdout.write(`elasticsearch ${o.es}:\n` +
          `  templates: ${r.changed.length === 0 ? 'all up to date' : `installed or updated ${r.changed.join(', ')}`}${r.unchanged.length > 0 && r.changed.length > 0 ? `; unchanged ${r.unchanged.join(', ')}` : ''}\n` +
          `  indices: ${r.created.length === 0 ? 'all exist' : `created ${r.created.join(', ')}`}\n` +
          r.features.map((f) => `  ${f}\n`).join(''))
      } finally {
        await es.close()
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
