import { userMessages, type Broker, type BrokerHandlers, type ControlEvent, type UserMessage } from './broker.js';

/** The single-node broker: delivery is a synchronous call into this node's hub. */
export function createMemoryBroker(handlers: BrokerHandlers): Broker {
  const subscribed = new Set<number>();
  return {
    subscribe(user: number): Promise<void> {
      subscribed.add(user);
      return Promise.resolve();
    },
    unsubscribe(user: number): void {
      subscribed.delete(user);
    },
    publish(messages: UserMessage[]): void {
      for (const message of messages) if (subscribed.has(message.user)) handlers.message(message);
    },
    publishNotification(message): void {
      for (const own of userMessages(message, (user) => subscribed.has(user))) handlers.message(own);
    },
    publishControl(event: ControlEvent): void {
      handlers.control(event);
    },
    ping: () => Promise.resolve(true),
    close: () => Promise.resolve(),
  };
}
