import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { RLockModule } from '../../lib';
import { AuditModule } from './audit/audit.module';
import { databaseOptions } from './database.options';
import { LocksController } from './locks/locks.controller';
import { FatalError, RecoverableError } from './resources/resource.errors';
import { ResourcesModule } from './resources/resources.module';
import { SAMPLE_CONFIG } from './sample.config';

/** One instance of the sample service. Run several against one database. */
@Module({
  imports: [
    TypeOrmModule.forRoot(databaseOptions(SAMPLE_CONFIG.databaseUrl)),
    RLockModule.forRoot({
      tableName: `${SAMPLE_CONFIG.tablePrefix}rlock`,
      ttlMs: SAMPLE_CONFIG.ttlMs,
      acquireTimeoutMs: SAMPLE_CONFIG.acquireTimeoutMs,
      holder: SAMPLE_CONFIG.instance,
      // Rebuilt from the lock table as these classes, so `instanceof` works on lastError.
      errors: [RecoverableError, FatalError],
    }),
    ScheduleModule.forRoot(),
    ResourcesModule,
    AuditModule,
  ],
  controllers: [LocksController],
})
export class AppModule {}
