import { statSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename } from 'node:path'
import type { Command } from 'commander'
import { InputReadError, isCodedError, PatternMismatchError } from '../errors.js'
import type { KeaEvent } from '../parse/event.js'
import { MismatchWatch } from '../parse/mismatch.js'
import type { ParseStats } from '../parse/parser.js'
import { compilePattern } from '../parse/pattern/compile.js'
import { DEFAULT_FILE_PATTERN_NAME } from '../parse/patterns.js'
import { inputError, openLogFile, parseStream } from '../parse/stream.js'
import type { CliIo } from './parse.js'
import { addPatternOptions, resolvePatternOptions, type PatternOptions } from './pattern-options.js'
import { addStoreOptions, commandConfig, type StoreOptions } from './store-options.js'
import { asLog, createLogger } from '../app/logger.js'
import { openStore, type OpenedStore } from '../app/store.js'

const BATCH = 2000

interface ImportOptions extends PatternOptions, StoreOptions {}

export function registerImport (program: Command, io: CliIo): void {
  addStoreOptions(addPatternOptions(program.command('import')))
    .description('Backfill Kea log files (rotated .1 … .N and .gz too) into the store; replays never duplicate')
    .argument('<files...>', 'log files; rotated ones are read oldest first')
    .action(async (files: string[], o: ImportOptions) => {
      io.exitCode = await runImport(files, o, io)
    })
}

/** Kea rotates x.log → x.log.1 → x.log.2 …: read .N first, the live file last, so time flows forward. */
export function importOrder (files: readonly string[]): string[] {
  const rank = (f: string): [string, number] => {
    const m = /^(.*?)(?:\.(\d+))?(?:\.gz)?$/.exec(f) as RegExpExecArray
    return [m[1] as string, m[2] === undefined ? 0 : Number(m[2])]
  }
  return [...files].sort((a, b) => {
    const [ba, na] = rank(a)
    const [bb, nb] = rank(b)
    return ba < bb ? -1 : ba > bb ? 1 : nb - na
  })
}

async function runImport (files: string[], o: ImportOptions, io: CliIo): Promise<number> {
  const resolved = resolvePatternOptions(o)
  const compiled = compilePattern(resolved.pattern, { timeZone: resolved.timeZone })
  const cfg = commandConfig(o)
  // A writer: creates the store (and its data directory) when there is none yet.
  const opened = await openStore(cfg, { mode: 'write', log: asLog(createLogger(cfg.log, io.stderr)) }) as OpenedStore
  const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
  const started = Date.now()
  // How the pattern is named in a warning: as the operator gave it.
  const patternShown = o.keaConfig === undefined ? o.pattern ?? DEFAULT_FILE_PATTERN_NAME : resolved.pattern
  // host.name is the scope of lease history: the same default as a file source of `keatrail
  // run` (this machine's name), so a backfill and the live collection after it are one history.
  const host = resolved.host ?? hostname()
  const totals = { files: 0, failedFiles: 0, mismatchedFiles: 0, lines: 0, events: 0, written: 0, duplicates: 0, replaced: 0, deadLettered: 0, unmatched: 0, partial: 0, bytes: 0 }
  let lastDraw = 0
  try {
    for (const file of importOrder(files)) {
      let size = 0
      try { size = statSync(file).size } catch (err) { throw new InputReadError(file, (err as Error).message) }
      let read = 0
      const draw = (force = false): void => {
        const now = Date.now()
        if (!tty || (!force && now - lastDraw < 250)) return
        lastDraw = now
        const secs = Math.max((now - started) / 1000, 0.001)
        io.stderr.write(`\r${basename(file)}  ${mib(read)} / ${mib(size)}  ${totals.events.toLocaleString('en')} events  ${Math.round(totals.events / secs).toLocaleString('en')} events/s   `)
      }
      let pending: KeaEvent[] = []
      const flush = async (): Promise<void> => {
        if (pending.length === 0) return
        const batch = pending
        pending = []
        const r = await opened.store.write(batch)
        totals.written += r.written
        totals.duplicates += r.duplicates
        totals.replaced += r.replaced ?? 0
        totals.deadLettered += r.deadLettered
      }
      const input = openLogFile(file)
      input.on('data', (chunk: Buffer) => { if (!file.endsWith('.gz')) read += chunk.length })
      const watch = new MismatchWatch()
      // The parser's counters, also when the file fails halfway (a truncated .gz): what was read
      // before is stored and counted.
      let stats: ParseStats | undefined
      const count = (s: ParseStats): void => {
        totals.lines += s.lines
        totals.unmatched += s.status.unmatched
        totals.partial += s.status.partial
      }
      try {
        await parseStream(input, {
          pattern: resolved.pattern,
          compiled,
          timeZone: resolved.timeZone,
          path: file,
          onStats: (s) => { stats = s },
          host,
          // Stored as parsed: the store may keep raw records only and re-derive their documents.
          rederivable: true
        }, async (events) => {
          pending.push(...events)
          totals.events += events.length
          watch.observe(events)
          if (pending.length >= BATCH) await flush()
          draw()
        })
        await flush()
        totals.files++
        if (stats !== undefined) count(stats)
        totals.bytes += size
        read = size
        draw(true)
      } catch (err) {
        if (isCodedError(err) && err.code.startsWith('KEATRAIL_ERR_STORE')) throw err
        // Events of the batches already handed over are stored; the ones still pending too.
        await flush()
        if (stats !== undefined) count(stats)
        totals.failedFiles++
        const e = inputError(file, err)
        io.stderr.write(`${tty ? '\n' : ''}keatrail: ${e.code}: ${e.message}\n`)
      }
      // A log in another pattern than the one given is stored as unmatched raw text, which no
      // lease history or search by field can use: say so loudly, with the fix, and exit 1.
      if (watch.mostlyUnmatched) {
        totals.mismatchedFiles++
        const e = new PatternMismatchError(file, watch.describe(patternShown, (name) => `import it with --pattern ${name}`))
        io.stderr.write(`${tty ? '\n' : ''}keatrail: ${e.code}: ${e.message}\n`)
      }
    }
  } finally {
    await opened.close()
  }
  const secs = (Date.now() - started) / 1000
  if (tty) io.stderr.write('\n')
  io.stderr.write(`imported ${totals.files} file(s), ${mib(totals.bytes)}, ${totals.lines.toLocaleString('en')} lines → ${totals.events.toLocaleString('en')} events in ${secs.toFixed(1)} s ` +
    `(${Math.round(totals.events / Math.max(secs, 0.001)).toLocaleString('en')} events/s): ${totals.written} new, ${totals.duplicates} already stored, ` +
    `${totals.replaced > 0 ? `${totals.replaced} replaced (stored before without parsing as well), ` : ''}` +
    `${totals.deadLettered} dead-lettered; parse: ${totals.unmatched} unmatched, ${totals.partial} partial` +
    `${totals.failedFiles > 0 ? `; ${totals.failedFiles} file(s) failed` : ''}` +
    `${totals.mismatchedFiles > 0 ? `; ${totals.mismatchedFiles} file(s) mostly not matching the pattern` : ''}\n`)
  return totals.failedFiles > 0 || totals.mismatchedFiles > 0 ? 1 : 0
}

function mib (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}
