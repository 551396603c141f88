import type { ValueTransformer } from 'typeorm';

/** Reads BIGINT columns as numbers (PostgreSQL and MySQL drivers return strings). */
export const bigintTransformer: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null ? null : Number(value)),
};
