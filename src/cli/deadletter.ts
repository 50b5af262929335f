import { Option, type Command } from 'commander'
import { asLog, createLogger } from '../app/logger.js'
import { openDeadLetters, withStore } from '../app/store.js'
import { retryDeadLetters } from '../store/deadletter.js'
import type { CliIo } from './parse.js'
import { intAtLeast } from './options.js'
import { addStoreOptions, commandConfig, type StoreOptions } from './store-options.js'

export function registerDeadLetter (program: Command, io: CliIo): void {
  const dl = program.command('deadletter').description('Inspect and retry events a store rejected')
  addStoreOptions(dl.command('list'))
    .description('List dead-lettered events with the reason')
    .addOption(new Option('--limit <n>', 'at most this many').argParser(intAtLeast(1)).default(100))
    .option('--json', 'one JSON object per line')
    .action(async (o: StoreOptions & { limit: number, json?: boolean }) => {
      // A reader: a data directory without a dead-letter store is an error, not an empty list.
      const dlq = openDeadLetters(commandConfig(o), 'read')
      try {
        // The text form shows no event: its lines come from the columns, no document read or parsed.
        // An entry whose document is no event is listed too, marked, without one.
        if (o.json === true) {
          const { entries, unreadable } = dlq.step(0, Number.MAX_SAFE_INTEGER, o.limit, Infinity)
          const all: Array<{ seq: number }> = [...entries, ...unreadable.map((u) => ({ ...u, unreadable: true }))].sort((a, b) => a.seq - b.seq)
          for (const e of all) io.stdout.write(JSON.stringify(e) + '\n')
        }
        else for (const e of dlq.summaries(o.limit)) io.stdout.write(`${e.seq}\t${e.time}\t${e.store}\t${e.eventId}\t${e.reason}\n`)
        if (o.json !== true) io.stderr.write(`${dlq.count()} dead-lettered event(s)\n`)
      } finally {
        dlq.close()
      }
    })
  addStoreOptions(dl.command('retry'))
    .description('Write dead-lettered events to the store again; those it accepts leave the dead-letter store')
    .addOption(new Option('--limit <n>', 'at most this many').argParser(intAtLeast(1)).default(10_000))
    .action(async (o: StoreOptions & { limit: number }) => {
      const cfg = commandConfig(o)
      // Retries what is there: both the dead letters and the store must exist already.
      openDeadLetters(cfg, 'read').close()
      await withStore(cfg, { mode: 'read', log: asLog(createLogger(cfg.log, io.stderr)) }, async (opened) => {
        const dlq = opened.deadLetters
        if (dlq === undefined) return
        const before = dlq.count()
        const r = await retryDeadLetters(opened.store, dlq, o.limit)
        io.stderr.write(`retried ${r.retried}: ${r.written} stored, ${r.duplicates} already stored, ${r.deadLettered} rejected again${r.unreadable > 0 ? `, ${r.unreadable} unreadable (left in place)` : ''} (${r.remaining} of ${before} remain)\n`)
        io.exitCode = r.deadLettered > 0 || r.unreadable > 0 ? 1 : 0
      })
    })
}
