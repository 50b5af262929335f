import { z } from 'zod'

export const sqliteStoreConfigSchema = z.object({
  path: z.string().min(1).describe('Database file; created with its directory if missing'),
  synchronous: z.enum(['full', 'normal']).default('full')
    .describe('full: a written batch survives power loss (fsync per commit); normal: survives a crash of keatrail, not of the machine'),
  busyTimeoutMs: z.number().int().min(0).default(5000).describe('How long a writer waits for a lock held by another process'),
  retention: z.object({
    maxAgeDays: z.number().positive().optional().describe('Delete events older than this'),
    maxSizeMiB: z.number().positive().optional().describe('Delete the oldest events while the database is larger than this')
  }).strict().default({}).describe('Retention, applied by applyRetention() (the service runs it periodically)')
}).strict()

export type SqliteStoreConfig = z.input<typeof sqliteStoreConfigSchema>
