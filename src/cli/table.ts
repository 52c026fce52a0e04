/**
 * A plain-text table: columns padded to their widest cell, two spaces apart, no trailing spaces.
 *
 * @example table(['NAME', 'SIZE'], [['demo:small', '20 MB']]) // "NAME        SIZE\ndemo:small  20 MB\n"
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  );
  const line = (cells: readonly string[]) =>
    `${cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd()}\n`;
  return line(header) + rows.map(line).join('');
}
