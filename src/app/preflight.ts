import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { SourceConfig } from '../config/config.js'
import { INSTALL_LOG_CODES } from '../errors.js'
import type { Log } from '../pipeline/types.js'
import { journalFilter } from '../sources/journal/source.js'
import { wildcard } from '../sources/file/source.js'

// What an operator gets wrong on a first install and keatrail cannot fix: a path that names no
// file, a journal source on a machine that keeps no journal. Neither stops `run` (files may
// appear later, a journal may come with the next boot): each is a warning at start, naming
// what was looked for, so an empty store is not the first sign.

type Output<T extends SourceConfig['type']> = Extract<SourceConfig, { type: T }>

/** Where systemd-journald keeps the system journal: persistent, then volatile. */
export const JOURNAL_ROOTS = ['/var/log/journal', '/run/log/journal']

/** The `include` globs of a file source that match no file now. */
export function globsWithoutFiles (cfg: Output<'file'>): string[] {
  const excluded = cfg.exclude.map(wildcard)
  return cfg.include.filter((glob) => {
    let names: string[]
    try {
      names = readdirSync(dirname(glob))
    } catch {
      return true
    }
    const re = wildcard(basename(glob))
    return !names.some((n) => re.test(n) && !excluded.some((x) => x.test(n)))
  })
}

/** What the source reads, as an operator would name it. */
function journalWhat (cfg: Output<'journal'>): string {
  const what = [...cfg.units, ...cfg.identifiers.map((t) => `identifier ${t}`)]
  return what.length === 0 ? 'any entries' : what.join(', ')
}

/** journalctl's answer to "is there one entry for this source?": undefined when it could not say. */
async function journalHasEntries (cfg: Output<'journal'>, signal?: AbortSignal): Promise<boolean | undefined> {
  return await new Promise((resolve) => {
    execFile(cfg.journalctl, ['--lines=1', '--output=cat', '--all', '--no-pager', '--quiet', ...journalFilter(cfg)],
      { timeout: 10_000, ...(signal === undefined ? {} : { signal }) },
      // A journalctl that cannot run is the source's own start-up error; not repeated here.
      (err, stdout) => { resolve(err === null ? stdout.length > 0 : undefined) })
  })
}

/** The warning for a journal source, or none. */
export async function journalWarning (cfg: Output<'journal'>, roots = JOURNAL_ROOTS, signal?: AbortSignal): Promise<string | undefined> {
  if (cfg.directory === undefined && cfg.file === undefined && !roots.some((r) => existsSync(r))) {
    return `No systemd journal on this machine (neither ${roots.join(' nor ')}) for ${journalWhat(cfg)}: the source waits for one`
  }
  if (await journalHasEntries(cfg, signal) === false) {
    const where = cfg.directory ?? cfg.file ?? 'the system journal'
    return `journalctl finds no entries for ${journalWhat(cfg)} in ${where}: the source waits for them (is the unit's name right, and may keatrail read the journal, e.g. group systemd-journal?)`
  }
  return undefined
}

/**
 * Logs a coded warning for each source that has nothing to read at start. Resolves when every
 * check is done; never rejects (a check that cannot decide says nothing).
 */
export async function warnAboutInputs (sources: readonly SourceConfig[], logFor: (name: string) => Log, opts: { journalRoots?: string[], signal?: AbortSignal } = {}): Promise<void> {
  await Promise.all(sources.map(async (s) => {
    const log = logFor(s.name)
    const warn = log.warn ?? log.error
    if (s.type === 'file') {
      for (const glob of globsWithoutFiles(s)) {
        warn(INSTALL_LOG_CODES.sourceNoFiles, `${glob} matches no file yet: the source waits for files to appear`, { glob })
      }
    } else if (s.type === 'journal') {
      const warning = await journalWarning(s, opts.journalRoots, opts.signal).catch(() => undefined)
      if (warning !== undefined && opts.signal?.aborted !== true) warn(INSTALL_LOG_CODES.sourceNoJournal, warning)
    }
  }))
}
