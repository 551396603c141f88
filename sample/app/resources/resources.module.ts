import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Resource } from './resource.entity';
import { ResourcesController } from './resources.controller';
import { ResourcesService } from './resources.service';

/** The resources: created once across the cluster. */
@Module({
  imports: [TypeOrmModule.forFeature([Resource])],
  controllers: [ResourcesController],
  providers: [ResourcesService],
  exports: [TypeOrmModule],
})
export class ResourcesModule {}
