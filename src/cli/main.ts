import { Command, CommanderError } from 'commander'
import { isCodedError } from '../errors.js'
import { registerDeadLetter } from './deadletter.js'
import { registerDiscover } from './discover.js'
import { registerImport } from './import.js'
import { registerLease } from './lease.js'
import { registerKea } from './kea.js'
import { registerSetup } from './setup.js'
import { registerServe } from './serve.js'
import { registerParse, type CliIo } from './parse.js'
import { registerRun } from './run.js'

/** Runs the CLI; resolves to the process exit code. `io` is swappable for tests. */
export async function main (argv: string[], io: CliIo = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  exitCode: 0
}): Promise<number> {
  const program = new Command('keatrail')
    .description('Log pipeline and search for ISC Kea DHCP')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s)
    })
  registerParse(program, io)
  registerImport(program, io)
  registerDeadLetter(program, io)
  registerRun(program, io)
  registerDiscover(program, io)
  registerLease(program, io)
  registerKea(program, io)
  registerSetup(program, io)
  registerServe(program, io)
  try {
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode
    if (isCodedError(err)) {
      io.stderr.write(`keatrail: ${err.code}: ${err.message}\n`)
      return 2
    }
    throw err
  }
  return io.exitCode
}
