import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResourcesModule } from '../resources/resources.module';
import { AuditController } from './audit.controller';
import { AuditRun } from './audit-run.entity';
import { ResourceAuditJob } from './resource-audit.job';

/** The cluster-wide audit job (one instance per tick) and its records. */
@Module({
  imports: [TypeOrmModule.forFeature([AuditRun]), ResourcesModule],
  controllers: [AuditController],
  providers: [ResourceAuditJob],
})
export class AuditModule {}
