import type { KeaEvent } from './event.js'
import type { RecordParserOptions } from './parser.js'

/**
 * Bump when a change to the parser or its rules makes the same raw record parse into a
 * different document. A stored block names the version its events were written with: blocks of
 * an older version are re-derived with today's rules (a parser fix reaches history) and, since
 * their postings were built by the older rules, are scanned rather than pruned by postings.
 */
// Not bumped (session 18) for changes that read differently only records no Kea server writes —
// a thread id holding '.', a time past 2099 or before 1970, a lease-cmds message of more than
// 64 KB: a bump makes every stored block scanned instead of pruned by its postings until retention
// ages it out, a cost every query would pay for records that are not there.
export const PARSER_VERSION = 1

/**
 * What a parser needs, beyond the raw record, to make an event's document again: its
 * pattern and the source's fields (RecordParserOptions'), and the parser version. Stored once
 * per distinct spec (parse_contexts), named per event.
 */
export type DerivationSpec = { v: number } & Pick<RecordParserOptions, 'pattern' | 'timeZone' | 'sourceId' | 'path' | 'host' | 'dataset' | 'maxRecordBytes' | 'maxRecordLines'>

/** One parser's spec, shared by every event it marks; `key` is the spec as stored (JSON). */
export interface Derivation { readonly spec: DerivationSpec, readonly key: string }

/** Non-enumerable on the event: JSON, equality in tests and structured clones do not see it. */
const DERIVATION = Symbol('keatrail.derivation')

/**
 * Marks `e` as made by `d` from its raw record alone: the store may keep the raw record and
 * re-derive the document when it is read (docs/ARCHITECTURE.md). Only a parser marks events, and
 * only those it can make again exactly; a source that changes an event after parsing (syslog
 * header fields, journal ids) does not use a marking parser.
 */
export function markDerivable (e: KeaEvent, d: Derivation): void {
  Object.defineProperty(e, DERIVATION, { value: d, enumerable: false, writable: true, configurable: true })
}

export function derivationOf (e: KeaEvent): Derivation | undefined {
  return (e as { [DERIVATION]?: Derivation })[DERIVATION]
}

export function newDerivation (spec: DerivationSpec): Derivation {
  return { spec, key: JSON.stringify(spec) }
}
