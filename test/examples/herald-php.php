<?php

/**
 * Drives examples/php/Herald.php for test/examples/php.test.ts: one call per run, arguments as JSON, the result
 * (or the HeraldException's fields) printed as JSON. Reads HERALD_URL, HERALD_APP_TOKEN and HERALD_JWT_SECRET.
 */

declare(strict_types=1);

require __DIR__ . '/../../examples/php/Herald.php';

use Herald\Client;
use Herald\HeraldException;

$command = $argv[1] ?? '';
$args = json_decode($argv[2] ?? '{}', true, 512, JSON_THROW_ON_ERROR);
$client = new Client((string) getenv('HERALD_URL'), (string) getenv('HERALD_APP_TOKEN'));

try {
    $result = match ($command) {
        'publish' => $client->publish($args['notification'], $args['key'] ?? null),
        'batch' => $client->publishBatch($args['notifications'], $args['key'] ?? null),
        'retract' => $client->retract($args['id']),
        'jwt' => Client::deviceJwt((string) getenv('HERALD_JWT_SECRET'), $args['user'], $args['lifetime'] ?? 3600),
        default => throw new InvalidArgumentException("unknown command: $command"),
    };
    echo json_encode(['ok' => $result], JSON_THROW_ON_ERROR), "\n";
} catch (HeraldException $e) {
    echo json_encode(['error' => [
        'code' => $e->errorCode,
        'status' => $e->status,
        'message' => $e->getMessage(),
        'retryable' => $e->isRetryable(),
        'retryAfter' => $e->retryAfter,
        'class' => get_class($e),
    ]], JSON_THROW_ON_ERROR), "\n";
}
