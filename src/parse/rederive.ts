import type { DerivationSpec } from './derivation.js'
import type { KeaEvent } from './event.js'
import { RecordParser } from './parser.js'

/**
 * Makes an event's document again from its raw record, as the parser that marked it did
 * (derivation.ts): the same pattern and source fields, the record's lines fed in order, and the
 * stored time for a record that names none (the parser took the time it read it).
 */
export class Rederiver {
  private readonly parser: RecordParser
  private now: () => number = Date.now
  private out: KeaEvent | undefined
  private extra = 0
  private readonly emit = (e: KeaEvent): void => {
    if (this.out === undefined) this.out = e
    else this.extra++
  }

  /** `messageOnly`: events with their header fields and message, no Kea rule applied (RecordParserOptions). */
  constructor (spec: DerivationSpec, messageOnly = false) {
    this.parser = new RecordParser({ ...spec, clock: () => this.now(), messageOnly, trustTimes: true })
  }

  /** The event of raw record `raw` read at `offset`; `timeMs`: its stored time (asked only for a record that names none). */
  derive (raw: string, offset: number, timeMs: () => number): KeaEvent {
    this.now = timeMs
    this.out = undefined
    this.extra = 0
    let from = 0
    for (;;) {
      const nl = raw.indexOf('\n', from)
      const text = nl < 0 ? raw.slice(from) : raw.slice(from, nl)
      this.parser.push({ text, offset, bytes: Buffer.byteLength(text) }, this.emit)
      if (nl < 0) break
      from = nl + 1
    }
    this.parser.flush(this.emit)
    // One record in, one event out: anything else means the record was not this parser's.
    if (this.out === undefined || this.extra > 0) throw new Error(`the raw record at offset ${offset} does not parse into one event again`)
    return this.out
  }
}

/**
 * The event a stored raw record reads as when it cannot be re-derived (its parse context is
 * missing or unreadable, or today's rules read the record as other than one event): its text,
 * offset and stored time kept, `unmatched` with the reason — a line is never lost, only unparsed.
 */
export function underivedEvent (raw: string, offset: number, iso: string, sourceId: string, why: string): KeaEvent {
  return {
    '@timestamp': iso,
    message: raw,
    event: { id: '', original: raw, module: 'kea', kind: 'event', dataset: 'kea.other', ingested: iso },
    log: { offset },
    kea: { source_id: sourceId, parse: { status: 'unmatched', reason: `not re-derived: ${why}` } }
  }
}
