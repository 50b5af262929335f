import type { Command } from 'commander'
import { DeadLetterStore, retryDeadLetters } from '../store/deadletter.js'
import type { CliIo } from './parse.js'
import { addStoreOptions, ensureDataDir, openStore, type StoreOptions } from './store-options.js'
import { join } from 'node:path'

export function registerDeadLetter (program: Command, io: CliIo): void {
  const dl = program.command('deadletter').description('Inspect and retry events a store rejected')
  addStoreOptions(dl.command('list'))
    .description('List dead-lettered events with the reason')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'one JSON object per line')
    .action(async (o: StoreOptions & { limit: string, json?: boolean }) => {
      ensureDataDir(o.dataDir ?? './data')
      const dlq = new DeadLetterStore(join(o.dataDir ?? './data', 'deadletter.db'))
      try {
        const entries = dlq.list(Number(o.limit))
        for (const e of entries) {
          io.stdout.write(o.json === true ? JSON.stringify(e) + '\n' : `${e.seq}\t${e.time}\t${e.store}\t${e.eventId}\t${e.reason}\n`)
        }
        if (o.json !== true) io.stderr.write(`${dlq.count()} dead-lettered event(s)\n`)
      } finally {
        dlq.close()
      }
    })
  addStoreOptions(dl.command('retry'))
    .description('Write dead-lettered events to the store again; those it accepts leave the dead-letter store')
    .option('--limit <n>', 'at most this many', '10000')
    .action(async (o: StoreOptions & { limit: string }) => {
      const opened = await openStore(o)
      try {
        const before = opened.deadLetters.count()
        const r = await retryDeadLetters(opened.store, opened.deadLetters, Number(o.limit))
        io.stderr.write(`retried ${r.retried}: ${r.written} stored, ${r.duplicates} already stored, ${r.deadLettered} rejected again (${r.remaining} of ${before} remain)\n`)
        io.exitCode = r.deadLettered > 0 ? 1 : 0
      } finally {
        await opened.close()
      }
    })
}
