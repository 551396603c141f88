import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { databaseLabel } from './database.options';
import { SAMPLE_CONFIG } from './sample.config';

async function bootstrap(): Promise<void> {
  // SAMPLE_LOG=debug also shows every lock taken and released (the demo keeps it in its logs).
  const app = await NestFactory.create(AppModule, {
    logger: process.env.SAMPLE_LOG === 'debug' ? undefined : ['log', 'warn', 'error', 'fatal'],
  });
  app.enableShutdownHooks();
  await app.listen(SAMPLE_CONFIG.port, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', 'localhost');
  new Logger('Sample').log(
    `Instance ${SAMPLE_CONFIG.instance} on ${databaseLabel(SAMPLE_CONFIG.databaseUrl)} listening on ${url}`,
  );
}

// Started by the demo (sample/demo) with an IPC channel: stop when the demo goes away.
if (process.send !== undefined) process.once('disconnect', () => process.exit(0));

void bootstrap();
