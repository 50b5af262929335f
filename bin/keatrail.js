#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js'
import { tuneHeap } from '../dist/src/heap.js'

// The heap's growth between full collections (why: src/heap.ts).
tuneHeap()

// What keatrail writes is private to its user whatever umask it was started with (a shell's
// 022, systemd's UMask=0027): the data directory 0700; the SQLite databases with their -wal
// and -shm, the dead-letter store, checkpoints, spill queues and the API audit log 0600. They
// hold which client had which address when, and who asked. For every command: those that
// write nothing are not affected, and a file `discover --out` writes is private too.
process.umask(0o077)

// Exit quietly when the reader goes away (keatrail parse … | head).
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err })

main(process.argv).then((code) => {
  process.exitCode = code
  // A failed command must end even if something it opened was left open (a source that failed
  // to start and did not close a socket): the error is printed, nothing more is coming.
  if (code !== 0) setTimeout(() => process.exit(), 2000).unref()
}, (err) => {
  process.stderr.write(`${err?.code ?? 'KEATRAIL_ERR_INTERNAL'}: ${err?.message ?? err}\n`)
  process.exitCode = 1
  setTimeout(() => process.exit(), 2000).unref()
})
