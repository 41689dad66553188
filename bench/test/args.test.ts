import { describe, expect, it } from 'vitest';
import { arg, argWithValue } from '../args.mjs';

const argv = ['node', 'bench/x.mjs', '--seed', '3', '--dims', '8,16', '--last'];

describe('bench flags', () => {
  it('reads a flag once, with its fallback when absent or without a value', () => {
    expect(arg('seed', '0', argv)).toBe('3');
    expect(arg('dims', '', argv)).toBe('8,16');
    expect(arg('epochs', '4', argv)).toBe('4');
    expect(arg('last', 'x', argv)).toBeUndefined();
    expect(argWithValue('last', 'x', argv)).toBe('x');
  });

  it('refuses a flag given twice, naming both values', () => {
    const twice = [...argv, '--seed', '1'];
    expect(() => arg('seed', '0', twice)).toThrow('--seed is given twice ("3" and "1"); give each bench flag once.');
    expect(() => argWithValue('seed', '0', twice)).toThrow('--seed is given twice');
    expect(arg('dims', '', twice)).toBe('8,16');
  });
});
