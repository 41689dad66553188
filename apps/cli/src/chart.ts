import { writeFileAtomically } from '@mrl/core';

export interface ChartSeries {
  label: string;
  points: { dim: number; value: number }[];
}

export interface ChartOptions {
  title: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const DASHES = ['', '6 4', '2 3', '8 3 2 3', '4 4', '1 2'];

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A line chart of a metric against the embedding dim (log2 x axis), one line per model: the
 * MRL curve and each baseline, as a standalone SVG document.
 */
export function renderChartSvg(series: readonly ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 440;
  const margin = { left: 70, right: 150, top: 48, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points);
  const dims = [...new Set(all.map((p) => p.dim))].sort((a, b) => a - b);
  const minX = Math.log2(dims[0] ?? 1);
  const maxX = Math.log2(dims.at(-1) ?? 2);
  const values = all.map((p) => p.value);
  let minY = Math.min(...values);
  let maxY = Math.max(...values);
  if (!Number.isFinite(minY)) [minY, maxY] = [0, 1];
  const pad = Math.max((maxY - minY) * 0.1, 0.005);
  minY = Math.max(0, minY - pad);
  maxY = maxY + pad;
  const x = (dim: number): number =>
    margin.left + (maxX === minX ? plotW / 2 : ((Math.log2(dim) - minX) / (maxX - minX)) * plotW);
  const y = (v: number): number => margin.top + plotH - ((v - minY) / (maxY - minY)) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${margin.left + plotW / 2}" y="26" text-anchor="middle" font-size="15">${escape(options.title)}</text>`,
  ];
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const v = minY + ((maxY - minY) * i) / ticks;
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e0e0e0"/>`,
    );
    parts.push(
      `<text x="${margin.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${(100 * v).toFixed(1)}</text>`,
    );
  }
  for (const dim of dims) {
    parts.push(
      `<line x1="${x(dim).toFixed(1)}" x2="${x(dim).toFixed(1)}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#f0f0f0"/>`,
    );
    parts.push(`<text x="${x(dim).toFixed(1)}" y="${margin.top + plotH + 18}" text-anchor="middle">${dim}</text>`);
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`,
  );
  parts.push(
    `<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">embedding dimension (log scale)</text>`,
  );
  parts.push(
    `<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(options.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const dash = DASHES[i % DASHES.length]!;
    const points = [...s.points].sort((a, b) => a.dim - b.dim);
    const path = points
      .map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.dim).toFixed(1)},${y(p.value).toFixed(1)}`)
      .join(' ');
    parts.push(
      `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`,
    );
    for (const p of points)
      parts.push(`<circle cx="${x(p.dim).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="3.5" fill="${color}"/>`);
    const ly = margin.top + 14 + i * 22;
    const lx = margin.left + plotW + 16;
    parts.push(
      `<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`,
    );
    parts.push(`<text x="${lx + 36}" y="${ly + 4}">${escape(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes `<base>.svg` and `<base>.png` (the SVG rendered by sharp). */
export async function writeChart(base: string, svg: string): Promise<{ svg: string; png: string }> {
  const { default: sharp } = await import('sharp');
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  await writeFileAtomically(`${base}.svg`, svg);
  await writeFileAtomically(`${base}.png`, png);
  return { svg: `${base}.svg`, png: `${base}.png` };
}
