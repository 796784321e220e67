<?php

/**
 * Herald client for PHP 8.1+: publish notifications and sign your users in to Herald.
 *
 * One file, no dependencies beyond ext-curl and ext-json, so it can be copied into any project. It holds two
 * classes (Herald\Client and Herald\HeraldException); split them into files of their own if your project
 * autoloads by PSR-4.
 *
 * See README.md beside this file, and docs/api.md for the HTTP API it speaks.
 */

declare(strict_types=1);

namespace Herald;

/**
 * An error answer from the server (`{"error":{"code","message"}}`), or a request that never got one.
 */
final class HeraldException extends \RuntimeException
{
    /**
     * @param string   $errorCode  The server's stable code (`invalid_title`, `unauthorized`, …), or `transport` when
     *                             the request failed before an answer, or `bad_response` for an answer that is not
     *                             Herald's JSON.
     * @param int      $status     HTTP status; 0 for `transport`.
     * @param int|null $retryAfter Seconds from the Retry-After header (429, 503), when sent.
     */
    public function __construct(
        public readonly string $errorCode,
        string $message,
        public readonly int $status = 0,
        public readonly ?int $retryAfter = null,
    ) {
        parent::__construct($message, $status);
    }

    /** True when sending the same request again later may succeed: keep its Idempotency-Key when you do. */
    public function isRetryable(): bool
    {
        return $this->errorCode === 'transport' || $this->status === 429 || $this->status >= 500;
    }
}

final class Client
{
    private readonly string $baseUrl;

    /**
     * @param string $baseUrl  The server, e.g. `https://herald.example.com` (no trailing path).
     * @param string $appToken An app (or admin) token: `POST /v1/tokens {"kind":"app"}`, or
     *                         `herald-server token create --app NAME`.
     * @param int    $timeout  Seconds for a whole request, connection included.
     */
    public function __construct(
        string $baseUrl,
        private readonly string $appToken,
        private readonly int $timeout = 10,
    ) {
        $this->baseUrl = rtrim($baseUrl, '/');
    }

    /**
     * Publishes one notification (`POST /v1/notifications`). Resolves once it is stored.
     *
     * @param array<string, mixed> $notification The publish body: `['to' => ['users' => ['alice']], 'title' => …]`.
     * @param string|null $idempotencyKey Makes a retry of the same publish return the same id and deliver once.
     * @return array{id: string, recipients: int, deliverAt?: string}
     * @throws HeraldException
     */
    public function publish(array $notification, ?string $idempotencyKey = null): array
    {
        return $this->request('POST', '/v1/notifications', $notification, $idempotencyKey);
    }

    /**
     * Publishes 1 to 100 notifications atomically (`POST /v1/notifications/batch`).
     *
     * @param list<array<string, mixed>> $notifications
     * @return list<array{id: string, recipients: int, deliverAt?: string}> In the order given.
     * @throws HeraldException
     */
    public function publishBatch(array $notifications, ?string $idempotencyKey = null): array
    {
        $body = ['notifications' => $notifications];
        $reply = $this->request('POST', '/v1/notifications/batch', $body, $idempotencyKey);
        return $reply['notifications'];
    }

    /**
     * Retracts a notification this token published: it leaves every inbox, and live devices get `deleted`.
     *
     * @throws HeraldException `not_found` when there is no such notification of this token's.
     */
    public function retract(string $id): void
    {
        $this->request('DELETE', '/v1/notifications/' . rawurlencode($id));
    }

    /**
     * Mints a device token for one of your site's users: a JWT signed with HS256 and the server's `jwt.secret`
     * (`HERALD_JWT_SECRET`). Herald accepts it wherever a device token goes and creates the user on first use.
     * Hand it to your page, which opens `wss://…/v1/stream` and sends `{"type":"hello","v":1,"token":…}`.
     *
     * @param string $secret   The same secret as the server's, at least 32 characters.
     * @param string $user     Herald user name: 1–64 letters, digits, `.`, `_`, `-`, starting with a letter or
     *                         digit.
     * @param int    $lifetime Seconds until `exp`. When it passes, the device's socket is closed with 4501.
     * @param array<string, mixed> $claims More claims, e.g. `['iss' => …, 'aud' => …]` when the server checks them.
     * @param int|null $now    Unix time of `iat`; the current time by default.
     */
    public static function deviceJwt(
        string $secret,
        string $user,
        int $lifetime = 3600,
        array $claims = [],
        ?int $now = null,
    ): string {
        if (preg_match('/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/', $user) !== 1) {
            throw new \InvalidArgumentException("not a Herald user name: $user");
        }
        $now ??= time();
        $header = ['alg' => 'HS256', 'typ' => 'JWT'];
        $payload = ['sub' => $user, 'iat' => $now, 'exp' => $now + $lifetime] + $claims;
        $signingInput = self::base64Url(json_encode($header, JSON_THROW_ON_ERROR)) . '.'
            . self::base64Url(json_encode($payload, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES));
        return $signingInput . '.' . self::base64Url(hash_hmac('sha256', $signingInput, $secret, true));
    }

    private static function base64Url(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    /**
     * @param array<string, mixed>|null $body
     * @return array<string, mixed>
     * @throws HeraldException
     */
    private function request(string $method, string $path, ?array $body = null, ?string $idempotencyKey = null): array
    {
        $headers = ['Authorization: Bearer ' . $this->appToken, 'Accept: application/json'];
        if ($idempotencyKey !== null) {
            $headers[] = 'Idempotency-Key: ' . $idempotencyKey;
        }
        $retryAfter = null;
        $curl = curl_init($this->baseUrl . $path);
        $options = [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => $this->timeout,
            CURLOPT_HEADERFUNCTION => static function ($curl, string $line) use (&$retryAfter): int {
                if (preg_match('/^retry-after:\s*(\d+)/i', $line, $match) === 1) {
                    $retryAfter = (int) $match[1];
                }
                return strlen($line);
            },
        ];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
            $flags = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE;
            $options[CURLOPT_POSTFIELDS] = json_encode($body, $flags);
        }
        $options[CURLOPT_HTTPHEADER] = $headers;
        curl_setopt_array($curl, $options);
        $text = curl_exec($curl);
        $status = (int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        $failure = curl_error($curl);
        curl_close($curl);

        if (!is_string($text)) {
            throw new HeraldException('transport', "$method $path: $failure");
        }
        $reply = $text === '' ? [] : json_decode($text, true);
        if ($status >= 200 && $status < 300 && is_array($reply)) {
            return $reply;
        }
        $error = is_array($reply) && is_array($reply['error'] ?? null) ? $reply['error'] : null;
        if ($error === null || !is_string($error['code'] ?? null)) {
            $excerpt = substr($text, 0, 200);
            throw new HeraldException('bad_response', "$method $path: HTTP $status $excerpt", $status, $retryAfter);
        }
        throw new HeraldException($error['code'], (string) ($error['message'] ?? ''), $status, $retryAfter);
    }
}
