/** A column of a text table: header, and how to show a row's value. */
export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number | undefined;
  /** Digits after the point for numbers (default 4). */
  digits?: number;
}

/** Formats rows as an aligned plain-text table. Numbers are right-aligned. */
export function formatTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const cells = rows.map((row) =>
    columns.map((c) => {
      const v = c.value(row);
      if (v === undefined) return '-';
      return typeof v === 'number' ? v.toFixed(c.digits ?? 4) : v;
    }),
  );
  const widths = columns.map((c, j) => Math.max(c.header.length, ...cells.map((r) => r[j]!.length)));
  const line = (values: string[]): string => values.map((v, j) => v.padStart(widths[j]!)).join('  ');
  return [line(columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join(
    '\n',
  );
}

/** Percent with one decimal, for accuracy tables. */
export function percent(value: number | undefined): string | undefined {
  return value === undefined ? undefined : (100 * value).toFixed(2);
}
