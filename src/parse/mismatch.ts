import type { KeaEvent } from './event.js'
import { compilePattern } from './pattern/compile.js'
import { builtinPatterns } from './patterns.js'

/**
 * A stream is "mostly unmatched" when more than half of its records did not match the pattern:
 * a log in another pattern (a syslog payload read as a file, Kea < 1.7.7 logs, a custom
 * pattern). Its lines are still stored, as `unmatched` raw text, but every answer built on them
 * (lease history, coverage) is wrong, so the operator must hear of it.
 */
export const MISMATCH_RATIO = 0.5
/** Records a live source is judged on (its first ones); an import judges each whole file. */
export const MISMATCH_SAMPLE_RECORDS = 100
const SAMPLE_LINES = 20

export function mostlyUnmatched (records: number, unmatched: number): boolean {
  return records > 0 && unmatched / records > MISMATCH_RATIO
}

/** Counts one stream's parse statuses and keeps a few unmatched lines to suggest a pattern from. */
export class MismatchWatch {
  records = 0
  unmatched = 0
  readonly samples: string[] = []

  observe (events: readonly KeaEvent[]): void {
    for (const e of events) {
      this.records++
      if (e.kea.parse.status !== 'unmatched') continue
      this.unmatched++
      if (this.samples.length < SAMPLE_LINES) this.samples.push(e.event.original.split('\n', 1)[0] as string)
    }
  }

  get mostlyUnmatched (): boolean {
    return mostlyUnmatched(this.records, this.unmatched)
  }

  /** "206 of 206 records did not match …; the lines look like kea-syslog: use --pattern kea-syslog". */
  describe (pattern: string | undefined, fix: (name: string) => string): string {
    const pct = Math.round((this.unmatched / Math.max(this.records, 1)) * 100)
    const suggested = suggestPattern(this.samples)
    return `${this.unmatched} of ${this.records} records (${pct} %) did not match the pattern${pattern === undefined ? '' : ` ${JSON.stringify(pattern)}`} and are kept only as unmatched raw text; ` +
      (suggested === undefined
        ? 'give the pattern of the Kea output that wrote them (--kea-config, or --pattern with its log4cplus pattern)'
        : `the lines look like the built-in pattern ${suggested}: ${fix(suggested)}`)
  }
}

/** The built-in pattern whose header matches most of `lines` (more than half), if any. */
export function suggestPattern (lines: readonly string[]): string | undefined {
  if (lines.length === 0) return undefined
  let best: { name: string, hits: number } | undefined
  for (const [name, p] of Object.entries(builtinPatterns())) {
    const { header } = compilePattern(p.pattern, { timeZone: 'UTC' })
    const hits = lines.filter((l) => header.test(l)).length
    if (hits > (best?.hits ?? 0)) best = { name, hits }
  }
  return best !== undefined && best.hits / lines.length > MISMATCH_RATIO ? best.name : undefined
}
