import { z } from 'zod'

export const pipelineConfigSchema = z.object({
  queueBatches: z.number().int().min(1).default(4).describe('Batches waiting for the store before sources wait (with the sources\' batch sizes, this bounds memory)'),
  drainMs: z.number().int().min(0).default(10_000).describe('How long a shutdown may spend writing queued batches'),
  startGraceMs: z.number().int().min(0).default(1000)
    .describe('A source that has no separate start-up step and stops with an error this soon (before its first batch) fails start-up; later it is reported as failed and keatrail keeps running')
}).strict()

export type PipelineConfig = z.output<typeof pipelineConfigSchema>

/** What a Pipeline uses for options it is not given: the config's defaults. */
export const PIPELINE_DEFAULTS: PipelineConfig = pipelineConfigSchema.parse({})
