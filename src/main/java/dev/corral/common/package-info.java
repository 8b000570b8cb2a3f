/**
 * Small building blocks every domain shares: typed ids, domain exceptions, paging and input rules,
 * and the server's way out to URLs a tenant chose (the address rules, and the proxy its HTTP
 * clients go through). Nothing here knows about gRPC, SQL or any one domain.
 */
package dev.corral.common;
