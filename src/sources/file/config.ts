import { z } from 'zod'

export const fileSourceConfigSchema = z.object({
  type: z.literal('file').describe('Follow log files that Kea writes (output_options output: a file path), through rotation'),
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/).describe('Source name: in counters, logs and the checkpoint file name'),
  include: z.array(z.string()).min(1)
    .describe('Files to follow; "*" matches within a file name. Include the rotated ones (kea-dhcp4.log*) so a file renamed while keatrail was down is still read'),
  exclude: z.array(z.string()).default(['*.gz', '*.lock', '*.tmp'])
    .describe('File names to skip ("*" wildcards); .gz archives are for `keatrail import`'),
  pattern: z.string().default('kea-file').describe('log4cplus pattern or a built-in name (parsers/patterns.yaml)'),
  timeZone: z.string().optional().describe('IANA zone of local-time (%D) headers; default: this host\'s'),
  host: z.string().optional().describe('host.name for the events: the Kea server that wrote the files, the scope of its lease history; default: this host\'s name (as `keatrail import --host`)'),
  readFrom: z.enum(['beginning', 'end']).default('beginning')
    .describe('Where to start in a file that has no checkpoint yet: beginning (backfill) or end (only new lines)'),
  pollIntervalMs: z.number().int().min(10).default(250).describe('How often files are checked for growth, rotation and new files'),
  idleFlushMs: z.number().int().min(10).default(1000)
    .describe('After this long without new bytes, a last line without newline and an open multi-line record are emitted'),
  maxLineBytes: z.number().int().min(1024).default(1024 * 1024).describe('Longer lines are cut, marked and counted'),
  batchBytes: z.number().int().min(64 * 1024).default(4 * 1024 * 1024)
    .describe('A batch is handed to the pipeline once its records hold this many bytes, whatever its event count: with pipeline.queueBatches this bounds what waits for the store (5,000 events of 1 MiB lines were ~5 GB)'),
  batchEvents: z.number().int().min(1).optional()
    .describe('Events per batch handed to the pipeline: one store transaction or bulk write each (SQLite writes a backlog ~1.5x faster in batches of 5,000 than of 1,000; a live tail sends smaller ones after idleFlushMs). Unset: 5,000, or the store\'s own (Elasticsearch/OpenSearch: 1,000)')
}).strict()

/** Events per batch when neither the source's config nor its store names a size. */
export const FILE_BATCH_EVENTS = 5000

export type FileSourceConfig = z.input<typeof fileSourceConfigSchema>
