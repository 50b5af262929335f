import { InvalidArgumentError } from 'commander'
import { TimezoneInvalidError } from '../errors.js'

// Parsers for commander's Option.argParser(): a bad value is refused while the command line is
// read, as one `KEATRAIL_ERR_USAGE` line naming the option (see main.ts), before anything is
// opened — never a zod dump or an internal error halfway through the command.

/** A TCP/UDP port: 0 (any free one) … 65535. */
export function parsePort (value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('A port is a whole number from 0 to 65535.')
  return Number(value)
}

/** A whole number ≥ `min`. */
export function intAtLeast (min: number): (value: string) => number {
  return (value) => {
    if (!/^-?\d+$/.test(value) || Number(value) < min) throw new InvalidArgumentError(`A whole number ≥ ${min} is expected.`)
    return Number(value)
  }
}

/** Whether the runtime's time zone database knows this IANA name (Europe/Berlin, UTC). */
export function isTimeZone (value: string): boolean {
  try {
    // Throws a RangeError for a zone the runtime does not have.
    new Intl.DateTimeFormat('en-US', { timeZone: value }).format(0)
    return true
  } catch {
    return false
  }
}

/** An IANA time zone name the runtime knows; otherwise the error every zone check raises. */
export function parseTimeZone (value: string): string {
  if (!isTimeZone(value)) throw new TimezoneInvalidError(`${JSON.stringify(value)} (such as UTC or Europe/Berlin)`)
  return value
}
