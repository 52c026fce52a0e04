/**
 * Joins `--name -1` into `--name=-1` for the options given: node's parseArgs reads a value that
 * starts with a dash as the next option, so `switchyard runner --keep-alive -1` (keep models
 * loaded forever, as Ollama writes it) would otherwise fail as an ambiguous option.
 *
 * @example negativeValues(['--keep-alive', '-1'], ['keep-alive']) // ['--keep-alive=-1']
 */
export function negativeValues(args: readonly string[], names: readonly string[]): string[] {
  const options = new Set(names.map((name) => `--${name}`));
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const next = args[index + 1];
    if (options.has(arg) && next !== undefined && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      index++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}
