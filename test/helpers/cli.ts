import { PassThrough, Readable } from 'node:stream'
import { main } from '../../src/cli/main.js'

/** Runs the CLI in-process with captured stdout/stderr (and optional stdin). */
export async function runCli (args: string[], stdin = ''): Promise<{ code: number, out: string, err: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (d: Buffer) => { out += d.toString() })
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await main(['node', 'keatrail', ...args], { stdin: Readable.from([Buffer.from(stdin)]), stdout, stderr, exitCode: 0 })
  return { code, out, err }
}
