#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js'

// Exit quietly when the reader goes away (keatrail parse … | head).
process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err })

main(process.argv).then((code) => { process.exitCode = code }, (err) => {
  process.stderr.write(`${err?.code ?? 'KEATRAIL_ERR_INTERNAL'}: ${err?.message ?? err}\n`)
  process.exitCode = 1
})
