#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js'

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
