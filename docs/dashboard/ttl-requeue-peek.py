"""Does a management-API peek (basic.get, ack_requeue_true) delay a message in a TTL queue?

Two messages wait in a queue with x-message-ttl, peeked back to back without pause until they leave; two controls wait
in an identical queue nobody peeks. Both queues dead-letter into `out`, polled every 10 ms. Prints how long each message
stayed. Uses its own vhost on the broker at http://localhost:15672 (guest) and deletes it afterwards.

    python3 docs/dashboard/ttl-requeue-peek.py [ttl_ms] [classic|quorum]   # output: docs/dashboard/ttl-requeue-peek.txt

`quorum` declares the two queues as the delay tree's hop queues are (quorum, at-least-once dead-lettering).
"""
import base64, json, sys, threading, time, urllib.request, uuid

M = 'http://localhost:15672/api'
AUTH = 'Basic ' + base64.b64encode(b'guest:guest').decode()
V = 'ttl-peek-' + uuid.uuid4().hex[:8]
TTL = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
KIND = sys.argv[2] if len(sys.argv) > 2 else 'classic'
HOP = {'x-queue-type': 'quorum', 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish'} if KIND == 'quorum' else {}


def call(method, path, body=None):
    request = urllib.request.Request(M + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={'authorization': AUTH, 'content-type': 'application/json'})
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


call('PUT', f'/vhosts/{V}', {})
try:
    call('PUT', f'/permissions/{V}/guest', {'configure': '.*', 'write': '.*', 'read': '.*'})
    call('PUT', f'/queues/{V}/out', {'durable': True})
    for q in ['peeked', 'control']:
        call('PUT', f'/queues/{V}/{q}', {'durable': True, 'arguments': {'x-message-ttl': TTL, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'out', **HOP}})
    published, left = {}, {}

    def publish(queue, payload):
        call('POST', f'/exchanges/{V}/amq.default/publish', {'properties': {}, 'routing_key': queue, 'payload': payload, 'payload_encoding': 'string'})
        published[payload] = time.time()

    publish('peeked', 'A'); publish('control', 'control-A'); time.sleep(0.5); publish('peeked', 'B'); publish('control', 'control-B')
    peeks = 0

    def poll():
        while len(left) < 4 and time.time() - published['A'] < TTL / 1000 + 10:
            for m in call('POST', f'/queues/{V}/out/get', {'count': 10, 'ackmode': 'ack_requeue_false', 'encoding': 'auto'}):
                left[m['payload']] = time.time()
            time.sleep(0.01)

    def peek():
        global peeks
        while len(left) < 4 and time.time() - published['A'] < TTL / 1000 + 10:
            call('POST', f'/queues/{V}/peeked/get', {'count': 50, 'ackmode': 'ack_requeue_true', 'encoding': 'auto'})
            peeks += 1

    threads = [threading.Thread(target=poll), threading.Thread(target=peek)]
    for t in threads: t.start()
    for t in threads: t.join()
    version = call('GET', '/overview')['rabbitmq_version']
    print(f'RabbitMQ {version}, {KIND} queues, x-message-ttl {TTL} ms, {peeks} peeks of the peeked queue')
    for p in ['A', 'control-A', 'B', 'control-B']:
        print(f'{p:10} stayed {round((left[p] - published[p]) * 1000)} ms' if p in left else f'{p:10} never left')
finally:
    call('DELETE', f'/vhosts/{V}')
