import { Option, type Command } from 'commander'
import { isCodedError, UsageError } from '../errors.js'
import { checkReportQuestion, evidenceReport } from '../leases/report.js'
import { reportHtml } from '../leases/report-html.js'
import { version } from '../paths.js'
import { parseTimeZone } from './options.js'
import { refuseExisting, writeOutput } from './output.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, withCommandStore, type StoreOptions } from './store-options.js'

interface ReportCliOptions extends StoreOptions {
  format: 'html' | 'json'
  out?: string
  force?: boolean
  scope?: string
  tz?: string
}

export function registerReport (lease: Command, io: CliIo): void {
  addStoreOptions(lease.command('report'))
    .description('An evidence report of who held ADDRESS at TIME: the answer, the intervals around it, every evidence line verbatim with its source, and the chain link covering each (self-contained HTML, prints on A4; or JSON)')
    .argument('<address>', 'IPv4 or IPv6 address')
    .argument('<time>', 'the time as a report gives it: RFC 3339, "2026-11-24 04:16:00 UTC", epoch seconds …')
    .addOption(new Option('--format <format>', 'html or json').choices(['html', 'json']).default('html'))
    .option('--out <file>', 'write the report here (default: standard output; an existing file only with --force, a symbolic link never)')
    .option('--force', 'replace --out if it exists')
    .addOption(new Option('--tz <zone>', 'IANA zone of a zone-less TIME and of the times shown beside UTC (default UTC)').argParser(parseTimeZone))
    .option('--scope <host>', 'only leases of this Kea server or lease domain (as lease at --scope)')
    .addHelpText('after', '\nExample:\n  keatrail lease report 192.0.2.23 "2026-11-24 04:16:00" --tz Europe/Berlin --out 192.0.2.23.html\n  keatrail verify --report 192.0.2.23.html')
    .action(async (address: string, time: string, o: ReportCliOptions) => {
      // The address or time could not be read: the operator's mistake, one line, before any store opens.
      try {
        checkReportQuestion(address, time, o.tz)
      } catch (err) {
        if (isCodedError(err)) throw err
        throw new UsageError(`${address} at ${time}: ${(err as Error).message}`)
      }
      // Said before the store is read (writeOutput refuses it again, without a window).
      if (o.out !== undefined) refuseExisting(o.out, o.force === true, 'keatrail lease report')
      const r = await withCommandStore(o, io, 'read', async (opened) => await evidenceReport(opened.store, address, time, { keatrailVersion: version(), ...(o.tz === undefined ? {} : { timeZone: o.tz }), ...(o.scope === undefined ? {} : { scope: o.scope }) }))
      const text = o.format === 'json' ? JSON.stringify(r, null, 2) + '\n' : reportHtml(r)
      if (o.out === undefined) { io.stdout.write(text); return }
      writeOutput(o.out, text, o.force === true, 'keatrail lease report')
      io.stderr.write(`${r.answer.status}: ${r.answer.reason}\nwrote ${o.out} (${r.evidence.length} evidence lines${r.chain === undefined ? '' : `, chain head ${r.chain.link}`})\n`)
    })
}
