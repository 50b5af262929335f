import type { KeaEvent } from '../parse/event.js'

/** Events a source hands to the pipeline, and how to tell it they are stored. */
export interface Batch {
  source: string
  events: KeaEvent[]
  /** Called once the store has durably written `events`: the source may advance its checkpoint. */
  ack: () => void
  /**
   * Called instead of ack() when a batch of a source that cannot replay is given up: shutdown
   * reached drainMs before the store had it. The source counts what it cannot read again in
   * `dropped` and records it as a collection gap. Without it the pipeline counts the events.
   */
  drop?: () => void
}

/** Emits a batch; resolves when the pipeline has room (backpressure is this await). */
export type Emit = (batch: Batch) => Promise<void>

export interface Source {
  readonly name: string
  /** Runs until `signal` aborts; must not lose events it has not had acknowledged. */
  run: (emit: Emit, signal: AbortSignal) => Promise<void>
  /** Saves checkpoints of everything acknowledged so far (called on shutdown). */
  checkpoint: () => void
  /** Its counters: the pipeline counts a source that stops with an error in `errors`. */
  readonly counters?: SourceCounters
  /**
   * Opens what the source needs (binds its ports, checks its state directory…) before it runs,
   * so one that cannot work fails start-up instead of leaving a service that collects nothing.
   * Idempotent (run() calls it itself when it was not called); when it fails, it closes what it
   * opened and throws. A source without it is judged by its first batch (Pipeline's start grace).
   */
  start?: () => Promise<void>
  /**
   * Whether what it hands over can be read again after a restart (a file or the journal, from
   * its checkpoint). At shutdown the batches of such a source are not queued any more: it reads
   * them again next start. Those of a source that cannot (syslog: a sender is never asked again)
   * are queued and stored during the drain, and what misses drainMs is counted as dropped.
   * Unset counts as false: a source that does not say costs only drain time, never data.
   */
  readonly replayable?: boolean
}

/** A source that opens what it needs before it runs (see `Source.start`). */
export type StartableSource = Source & { start: () => Promise<void> }

export function isStartable (s: Source): s is StartableSource {
  return typeof s.start === 'function'
}

/** What /readyz reports per source: only `running` is ready. */
export type SourceState = 'starting' | 'running' | 'failed' | 'stopped'

/**
 * Per-source counters of what only the source sees. Events (by parse status, and by what the
 * store did with them) are counted once, by the pipeline for every source alike
 * (Pipeline.sourceFlow, by Batch.source), not here.
 */
export interface SourceCounters {
  /** Bytes read or received. */
  received: number
  /** Input kept in an on-disk spill queue because the pipeline was full (UDP syslog). */
  spilled: number
  /** Input lost (UDP syslog: spill queue full, kernel receive buffer overflows). */
  dropped: number
  /** Errors, each also logged with its code. */
  errors: number
}

export function emptyCounters (): SourceCounters {
  return { received: 0, spilled: 0, dropped: 0, errors: 0 }
}

/** Structured logging every component receives (JSON lines in `keatrail run`). */
export interface Log {
  info: (msg: string, fields?: Record<string, unknown>) => void
  error: (code: string, msg: string, fields?: Record<string, unknown>) => void
  /** Something the operator should look at that is not a failure (optional: tests pass stubs). */
  warn?: (code: string, msg: string, fields?: Record<string, unknown>) => void
  /** Detail only wanted when looking into a problem (log.level debug). */
  debug?: (msg: string, fields?: Record<string, unknown>) => void
}
