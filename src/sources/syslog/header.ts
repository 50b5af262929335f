import { isEventTime } from '../../parse/time/iso.js'

/** What the syslog header says about one message. */
export interface SyslogMessage {
  facility: number
  severity: number
  /** Epoch ms from the header, undefined when the header has none. */
  time: number | undefined
  host: string | undefined
  app: string | undefined
  procId: string | undefined
  msgId: string | undefined
  /** RFC 5424 structured data, verbatim ("-" when none). */
  structuredData: string | undefined
  format: 'rfc5424' | 'rfc3164' | 'none'
  /** The message body: what Kea's syslog pattern wrote. */
  body: string
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const RFC3164 = /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d):(\d\d):(\d\d) (?:(\S+) )?([^\s:[]+)(?:\[(\d+)\])?: ?/
// RFC 5424 §6.2.3 (RFC 3339): FULL-DATE "T" FULL-TIME with a four-digit year; up to nine
// fraction digits and a lower-case t/z, as senders write them (Go's RFC3339Nano). Date.parse
// alone also reads `+275760-09-13T00:00:00Z`, a time no store can hold.
const RFC5424_TIME = /^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)$/
const RFC5424 = /^1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+) ?/

/**
 * Parses `<PRI>` and an RFC 5424 or RFC 3164 header. RFC 3164 has no year and no zone: the
 * year is the one that puts the time closest before `now` (a December message read in January
 * belongs to last year), the zone is `toUtc`'s (the sender's local time).
 */
export function parseSyslog (text: string, now: number, toUtc: (wallMs: number) => number): SyslogMessage | undefined {
  const m = /^<(\d{1,3})>/.exec(text)
  if (m === null) return undefined
  const pri = Number(m[1])
  if (pri > 191) return undefined
  const rest = text.slice(m[0].length)
  const base = { facility: pri >> 3, severity: pri & 7 }
  const r5 = RFC5424.exec(rest)
  if (r5 !== null) {
    const nil = (v: string | undefined): string | undefined => v === '-' ? undefined : v
    const t = RFC5424_TIME.test(r5[1] as string) ? Date.parse((r5[1] as string).toUpperCase()) : Number.NaN
    return {
      ...base,
      // Not RFC 5424's TIMESTAMP (four-digit year): the receive time stands for it, as for "-".
      time: isEventTime(t) ? t : undefined,
      host: nil(r5[2]),
      app: nil(r5[3]),
      procId: nil(r5[4]),
      msgId: nil(r5[5]),
      structuredData: r5[6],
      format: 'rfc5424',
      body: rest.slice(r5[0].length).replace(/^\uFEFF/, '')
    }
  }
  const r3 = RFC3164.exec(rest)
  if (r3 !== null) {
    const month = MONTHS.indexOf(r3[1] as string)
    const day = Number((r3[2] as string).trim())
    const ref = new Date(now)
    let year = ref.getUTCFullYear()
    let t = toUtc(Date.UTC(year, month, day, Number(r3[3]), Number(r3[4]), Number(r3[5])))
    if (t > now + 86_400_000) { year--; t = toUtc(Date.UTC(year, month, day, Number(r3[3]), Number(r3[4]), Number(r3[5]))) }
    return {
      ...base,
      time: t,
      host: r3[6],
      app: r3[7],
      procId: r3[8],
      msgId: undefined,
      structuredData: undefined,
      format: 'rfc3164',
      body: rest.slice(r3[0].length)
    }
  }
  return { ...base, time: undefined, host: undefined, app: undefined, procId: undefined, msgId: undefined, structuredData: undefined, format: 'none', body: rest }
}
