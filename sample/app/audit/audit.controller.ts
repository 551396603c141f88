import { Controller, Get } from '@nestjs/common';
import type { AuditRun } from './audit-run.entity';
import { ResourceAuditJob } from './resource-audit.job';

/** `GET /audit-runs`: the runs of the cluster-wide audit job. */
@Controller('audit-runs')
export class AuditController {
  constructor(private readonly job: ResourceAuditJob) {}

  /** Every run, oldest first. */
  @Get()
  list(): Promise<AuditRun[]> {
    return this.job.list();
  }
}
