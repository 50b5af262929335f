import { closeSync, constants, lstatSync, openSync, writeFileSync } from 'node:fs'
import { OutputFileExistsError, OutputWriteError } from '../errors.js'

/**
 * Writes a command's `--out` (`command` names it in a refusal). Without --force an existing file is refused (O_EXCL, as `discover` does with
 * 'wx': no window between a check and the write); with it, a file is replaced. A symbolic link
 * is never followed, with or without --force (O_EXCL and O_NOFOLLOW refuse it): `--out
 * report.html` linked to another file would otherwise overwrite that file.
 */
export function writeOutput (path: string, text: string, force: boolean, command: string): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (force ? constants.O_TRUNC : constants.O_EXCL)
  let fd: number
  try {
    fd = openSync(path, flags, 0o666)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST' || code === 'ELOOP') refuseExisting(path, force, command)
    throw new OutputWriteError(path, (err as Error).message)
  }
  try {
    writeFileSync(fd, text)
  } catch (err) {
    throw new OutputWriteError(path, (err as Error).message)
  } finally {
    closeSync(fd)
  }
}

/** Refuses a symbolic link at `path` always, anything else there without --force. */
export function refuseExisting (path: string, force: boolean, command: string): void {
  let link: boolean
  try {
    link = lstatSync(path).isSymbolicLink()
  } catch {
    return
  }
  if (link) throw new OutputFileExistsError(path, `it is a symbolic link, which ${command} never writes through (not even with --force): give the path of a file`)
  if (!force) throw new OutputFileExistsError(path, `${command} replaces it only with --force`)
}
