import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigInvalidError } from '../errors.js'
import { validateConfig } from './validate.js'
import { fileSourceConfigSchema } from '../sources/file/config.js'
import { journalSourceConfigSchema } from '../sources/journal/source.js'
import { syslogSourceConfigSchema } from '../sources/syslog/source.js'
import { keaConfigSchema } from '../kea/poller.js'
import { apiConfigSchema } from '../api/config.js'
import { pipelineConfigSchema } from '../pipeline/config.js'
import { sqliteStoreConfigSchema } from '../store/sqlite/config.js'
import { elasticsearchStoreConfigSchema } from '../store/elasticsearch/config.js'
import { logConfigSchema } from '../app/logger.js'
import { leasesConfigSchema } from '../leases/config.js'

// keatrail.yaml is composed of the components' own schemas and nothing else: a field a
// component accepts is accepted here, with the component's default (written once, beside it).
// Only what the service adds around a component is declared here.

const sqliteSchema = sqliteStoreConfigSchema.extend({
  type: z.literal('sqlite').describe('Events in an SQLite database under dataDir (embedded: nothing else to run)'),
  path: z.string().min(1).optional().describe('Database file; default <dataDir>/keatrail.db'),
  retention: sqliteStoreConfigSchema.shape.retention.unwrap().extend({
    intervalMinutes: z.number().positive().default(10).describe('How often the service applies retention (also once at start)')
  }).strict().prefault({}).describe('Retention of events; none unless maxAgeDays or maxSizeMiB is set (Elasticsearch: use ILM)')
})

const elasticsearchSchema = elasticsearchStoreConfigSchema.extend({
  type: z.literal('elasticsearch').describe('Events in Elasticsearch data streams (`keatrail setup` installs their templates and ILM policy)')
})

const opensearchSchema = elasticsearchStoreConfigSchema.extend({
  type: z.literal('opensearch').describe('Events in OpenSearch data streams: the same settings, indices and answers as elasticsearch (`keatrail setup` installs the templates)')
})

export const storeConfigSchema = z.discriminatedUnion('type', [sqliteSchema, elasticsearchSchema, opensearchSchema])
export type StoreConfig = z.output<typeof storeConfigSchema>

export const sourceConfigSchema = z.discriminatedUnion('type', [fileSourceConfigSchema, syslogSourceConfigSchema, journalSourceConfigSchema])
export type SourceConfig = z.output<typeof sourceConfigSchema>

export const configSchema = z.object({
  dataDir: z.string().min(1).default('./data').describe('SQLite database, dead letters, checkpoints (state/) and the writer lock live here'),
  store: storeConfigSchema.prefault({ type: 'sqlite' }).describe('Where events are kept: sqlite (embedded), elasticsearch or opensearch'),
  sources: z.array(sourceConfigSchema).default([]).describe('What to collect: file, syslog and journal sources'),
  kea: keaConfigSchema.prefault({}).describe('Kea status snapshots (Control Agent / control sockets) and pool depletion alerts'),
  leases: leasesConfigSchema.prefault({}).describe('What lease history knows of the Kea servers beyond their logs'),
  api: apiConfigSchema.prefault({}).describe('REST API and web UI (GET /, /api/v1, /docs, /metrics)'),
  pipeline: pipelineConfigSchema.prefault({}).describe('The queue between sources and the store'),
  log: logConfigSchema.prefault({}).describe('keatrail\'s own log (JSON lines on stderr)')
}).strict()

export type KeatrailConfig = z.infer<typeof configSchema>

/** Validates a config object; an error names the field's path. */
export function parseConfig (value: unknown, where = 'config'): KeatrailConfig {
  return validateConfig(configSchema, value ?? {}, `${where}:`)
}

/** The YAML document of a config file, not yet validated. */
export function readConfigDocument (path: string): unknown {
  try {
    return parseYaml(readFileSync(path, 'utf8')) ?? {}
  } catch (err) {
    throw new ConfigInvalidError(path, (err as Error).message)
  }
}

export function loadConfig (path: string): KeatrailConfig {
  return parseConfig(readConfigDocument(path), path)
}
