import { Command, CommanderError } from 'commander'
import { isCodedError, UsageError, type CodedError } from '../errors.js'
import { loadConfig } from '../config/config.js'
import { version } from '../paths.js'
import { registerConfigCheck } from './config-check.js'
import { registerDeadLetter } from './deadletter.js'
import { registerDiscover } from './discover.js'
import { explainError, type ErrorContext } from './explain.js'
import { addExamples } from './help.js'
import { registerImport } from './import.js'
import { registerLease } from './lease.js'
import { registerKea } from './kea.js'
import { registerSetup } from './setup.js'
import { registerServe } from './serve.js'
import { registerParse, type CliIo } from './parse.js'
import { registerRun } from './run.js'
import { registerStore } from './store.js'
import { registerVerify } from './verify.js'

/** Exit code of every usage and coded error (commander's own included); 1 is "done, but not all of it". */
export const EXIT_ERROR = 2


/** Runs the CLI; resolves to the process exit code. `io` is swappable for tests. */
export async function main (argv: string[], io: CliIo = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  exitCode: 0
}): Promise<number> {
  const program = new Command('keatrail')
    .description('Log pipeline and search for ISC Kea DHCP')
    .version(version(), '-V, --version', 'print keatrail\'s version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // commander's own messages ("error: unknown option …") are printed below, in keatrail's
      // one-line coded form, like every other usage error.
      outputError: () => {}
    })
  // The command that runs (a subcommand), to name its data directory or URL in an error.
  let active: Command | undefined
  program.hook('preAction', (_program, actionCommand) => { active = actionCommand })
  registerParse(program, io)
  registerImport(program, io)
  registerDeadLetter(program, io)
  registerRun(program, io)
  registerDiscover(program, io)
  registerLease(program, io)
  registerKea(program, io)
  registerSetup(program, io)
  registerServe(program, io)
  registerConfigCheck(program, io)
  registerStore(program, io)
  registerVerify(program, io)
  addExamples(program)
  const fail = (err: CodedError): number => {
    io.stderr.write(`keatrail: ${err.code}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`)
    return EXIT_ERROR
  }
  try {
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with 0; the help shown for a missing command is a usage error.
      if (err.exitCode === 0) return 0
      if (err.code === 'commander.help') return EXIT_ERROR
      return fail(new UsageError(err.message.replace(/^error: /, '')))
    }
    if (isCodedError(err)) return fail(err)
    const explained = explainError(err, errorContext(active))
    if (explained !== undefined) return fail(explained)
    throw err
  }
  return io.exitCode
}

/** The dataDir a config file names (already validated by the command that failed), if readable. */
function configDataDir (file: string): string | undefined {
  try {
    return loadConfig(file).dataDir
  } catch {
    return undefined
  }
}

function errorContext (cmd: Command | undefined): ErrorContext {
  if (cmd === undefined) return {}
  const o = cmd.opts<{ dataDir?: unknown, esUrl?: unknown, config?: unknown }>()
  return {
    dataDir: typeof o.dataDir === 'string' && (cmd.getOptionValueSource('dataDir') === 'cli' || typeof o.config !== 'string')
      ? o.dataDir
      : typeof o.config === 'string' ? configDataDir(o.config) : undefined,
    esUrl: typeof o.esUrl === 'string' ? o.esUrl : process.env.KEATRAIL_ES_URL
  }
}
