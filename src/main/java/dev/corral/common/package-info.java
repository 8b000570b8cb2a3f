/**
 * Small building blocks every domain shares: typed ids, domain exceptions, paging and input rules.
 * Nothing here knows about gRPC, SQL or any one domain.
 */
package dev.corral.common;
