import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DataDirError, DataDirLockedError } from '../errors.js'

/** The file in the data directory that says which process writes there. */
export const LOCK_FILE = 'keatrail.lock'

/** Whether a process with this id exists (EPERM: it does, under another user). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function ageMs (path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

function holder (path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * Takes the data directory for one writer, as Filebeat and Vector lock their data path: two
 * `keatrail run` on one directory would follow the same files with the same checkpoints and
 * overwrite each other's. The lock is a file created exclusively (O_EXCL) holding the pid; one
 * left by a process that no longer exists (kill -9, power loss) is taken over. The same process
 * holding it already counts as held: a second service in one process is a second writer too.
 * Returns the release function.
 */
export function lockDataDir (dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE)
  // Bounded: a stale lock is removed once; losing the race for it then is a real holder.
  for (let attempt = 0; ; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirError(dataDir, (err as Error).message)
      const pid = holder(path)
      // No pid yet may be a writer between creating the file and writing to it: only a file
      // that stayed empty for a while is stale.
      if (attempt === 0 && (pid === undefined ? ageMs(path) > 5000 : !alive(pid))) {
        rmSync(path, { force: true })
        continue
      }
      throw new DataDirLockedError(dataDir, pid === undefined ? `lock file ${path}` : `pid ${pid}, lock file ${path}`)
    }
    try {
      writeSync(fd, `${process.pid}\n`)
    } finally {
      closeSync(fd)
    }
    let released = false
    return () => {
      if (released) return
      released = true
      // Only our own: a lock some other process took over after ours was judged stale stays.
      if (holder(path) === process.pid) rmSync(path, { force: true })
    }
  }
}
