import type { EntitySchemaColumnOptions, TableColumnOptions } from 'typeorm';
import { columnCharset } from './mysql-charset';

/** One column of the lock tables, shared by the entities and the migrations. */
export interface ColumnDefinition {
  readonly property: string;
  readonly name: string;
  readonly type: string;
  readonly length?: number;
  readonly primary?: boolean;
  readonly nullable?: boolean;
}

/** The columns of an `EntitySchema`, by property. */
export function entityColumns(
  columns: readonly ColumnDefinition[],
): Record<string, EntitySchemaColumnOptions> {
  return Object.fromEntries(
    columns.map((c) => [
      c.property,
      {
        name: c.name,
        type: c.type as EntitySchemaColumnOptions['type'],
        length: c.length,
        primary: c.primary,
        nullable: c.nullable ?? false,
      },
    ]),
  );
}

/** The columns of a migration's `Table` for a TypeORM driver type. */
export function tableColumns(
  columns: readonly ColumnDefinition[],
  driverType: unknown,
): TableColumnOptions[] {
  return columns.map((c) => ({
    name: c.name,
    type: c.type,
    length: c.length === undefined ? undefined : String(c.length),
    isPrimary: c.primary ?? false,
    isNullable: c.nullable ?? false,
    // MySQL/MariaDB: utf8mb4, binary collation, whatever the server's default.
    ...columnCharset(driverType, c.type),
  }));
}
