import { join } from 'node:path'
import type { Logger } from 'pino'
import type { KeatrailConfig, SourceConfig } from '../config/config.js'
import type { Log, Source } from '../pipeline/types.js'
import { FileSource } from '../sources/file/source.js'
import { JournalSource } from '../sources/journal/source.js'
import { SyslogSource } from '../sources/syslog/source.js'
import type { Store } from '../store/types.js'
import { asLog } from './logger.js'

/** What every source is built with (Vector's SourceContext): shared by all, the same shape for each kind. */
export interface BuildContext {
  /** Checkpoints and spill queues: <dataDir>/state. */
  stateDir: string
  /** The service's logger; each source gets a child with `source: <name>`. */
  logger: Logger
  store: Store
}

type Builder<T extends SourceConfig['type']> = (cfg: Extract<SourceConfig, { type: T }>, ctx: BuildContext, log: Log) => Source

/** The source kinds keatrail.yaml's `sources[].type` names, each built from its own config. */
export const SOURCES: { [T in SourceConfig['type']]: Builder<T> } = {
  file: (cfg, ctx, log) => new FileSource({ ...cfg, batchEvents: cfg.batchEvents ?? ctx.store.batchEvents }, ctx.stateDir, log),
  journal: (cfg, ctx, log) => new JournalSource(cfg, ctx.stateDir, log),
  syslog: (cfg, ctx, log) => {
    // Dropped datagrams are a gap in what keatrail saw: lease answers overlapping it say so.
    // The source retries (and logs) a gap that could not be recorded: the promise is its answer.
    const onLoss = async (from: number, to: number, count: number): Promise<void> => {
      await ctx.store.leases.recordGap({ scope: '*', from, to, reason: `syslog source ${cfg.name} dropped ${count} datagram(s)` })
    }
    return new SyslogSource(cfg, ctx.stateDir, onLoss, log)
  }
}

export function stateDir (cfg: KeatrailConfig): string {
  return join(cfg.dataDir, 'state')
}

export function buildSources (cfg: KeatrailConfig, ctx: BuildContext): Source[] {
  return cfg.sources.map((s) => {
    const log = asLog(ctx.logger.child({ source: s.name }))
    return (SOURCES[s.type] as Builder<typeof s.type>)(s as never, ctx, log)
  })
}
