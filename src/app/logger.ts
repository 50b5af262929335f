import { pino, type Logger } from 'pino'
import { z } from 'zod'
import type { Log } from '../pipeline/types.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const logConfigSchema = z.object({
  level: z.enum(LOG_LEVELS).default('info')
    .describe('Lowest level written: error, warn, info, debug (adds the periodic "Counters." line and API requests), trace; silent writes nothing')
}).strict()

export type LogConfig = z.output<typeof logConfigSchema>

/**
 * keatrail's own log: pino, one JSON object per line on stderr (`time`, `level` as its label,
 * `code` for problems, `msg`, fields; `err` with the stack). Fastify gets the same instance.
 */
export function createLogger (cfg: LogConfig, stream: { write: (line: string) => unknown }): Logger {
  return pino({
    level: cfg.level,
    messageKey: 'msg',
    // Labels, not pino's numbers: operators and scripts match "error", not 50.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    // pid and hostname on every line say nothing a journal or a container does not.
    base: undefined
  }, stream)
}

/**
 * The components' Log over a pino logger. `error: Error` in fields goes out as `err` (with its
 * stack) and its message stays in `error`, where scripts and tests look for it.
 */
export function asLog (logger: Logger): Log {
  // A child's bindings (source: name) are on every line already: not written twice.
  const bound = Object.keys(logger.bindings())
  const withErr = (given: Record<string, unknown> | undefined): Record<string, unknown> => {
    if (given === undefined) return {}
    const fields = bound.length === 0 ? given : Object.fromEntries(Object.entries(given).filter(([k]) => !bound.includes(k)))
    const e = fields.err ?? fields.error
    if (e instanceof Error) return { ...fields, err: e, error: e.message }
    return fields
  }
  return {
    info: (msg, fields) => { logger.info(withErr(fields), msg) },
    warn: (code, msg, fields) => { logger.warn({ code, ...withErr(fields) }, msg) },
    error: (code, msg, fields) => { logger.error({ code, ...withErr(fields) }, msg) },
    debug: (msg, fields) => { logger.debug(withErr(fields), msg) }
  }
}

/** A Log that writes nothing (commands that poll or parse without a service). */
export const SILENT_LOG: Log = { info: () => {}, error: () => {} }
