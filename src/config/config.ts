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
import { PIPELINE_DEFAULTS, pipelineConfigSchema } from '../pipeline/config.js'
import { elasticsearchStoreConfigSchema } from '../store/elasticsearch/config.js'

const sqliteSchema = z.object({
  type: z.literal('sqlite'),
  path: z.string().optional().describe('Database file; default <dataDir>/keatrail.db'),
  synchronous: z.enum(['full', 'normal']).optional().describe('full: batches survive power loss'),
  retention: z.object({
    maxAgeDays: z.number().positive().optional().describe('Delete events older than this'),
    maxSizeMiB: z.number().positive().optional().describe('Delete the oldest events while the database is larger'),
    intervalMinutes: z.number().positive().default(10).describe('How often retention runs (also once at start)')
  }).strict().optional()
}).strict()

const elasticsearchSchema = z.object({
  type: z.literal('elasticsearch'),
  url: z.string().url().describe('Elasticsearch URL'),
  namespace: z.string().optional().describe('Data stream namespace (logs-kea.dhcp4-<namespace>)'),
  username: z.string().optional().describe('Basic-auth user; password from KEATRAIL_ES_PASSWORD'),
  caFile: z.string().optional().describe('CA certificate (PEM) of the cluster'),
  retry: elasticsearchStoreConfigSchema.shape.retry
}).strict()

export const configSchema = z.object({
  dataDir: z.string().default('./data').describe('SQLite database, dead letters and checkpoints (state/) live here'),
  store: z.discriminatedUnion('type', [sqliteSchema, elasticsearchSchema]).default({ type: 'sqlite' }).describe('Where events are kept'),
  sources: z.array(z.discriminatedUnion('type', [fileSourceConfigSchema, syslogSourceConfigSchema, journalSourceConfigSchema])).default([]).describe('What to collect: file, syslog and journal sources'),
  kea: keaConfigSchema.default({ servers: [], alerts: { warn: 80, critical: 95, hysteresis: 5, overrides: [] } }).describe('Kea status snapshots (Control Agent / control sockets) and pool depletion alerts'),
  api: apiConfigSchema.default(apiConfigSchema.parse({})).describe('REST API and web UI (GET /, /api/v1, /docs, /metrics)'),
  pipeline: pipelineConfigSchema.default(PIPELINE_DEFAULTS).describe('The queue between sources and the store')
}).strict()

export type KeatrailConfig = z.infer<typeof configSchema>

/** Validates a config object; an error names the field's path. */
export function parseConfig (value: unknown, where = 'config'): KeatrailConfig {
  return validateConfig(configSchema, value ?? {}, `${where}:`)
}

export function loadConfig (path: string): KeatrailConfig {
  let doc: unknown
  try {
    doc = parseYaml(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new ConfigInvalidError(path, (err as Error).message)
  }
  return parseConfig(doc, path)
}
