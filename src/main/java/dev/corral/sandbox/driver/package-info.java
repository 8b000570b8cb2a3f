/**
 * What every sandbox driver shares: the driver interface, the command a driver runs and what it
 * did, limits and their defaults, and the one setup routine for new sandboxes. No records (SQL) and
 * no tool here.
 */
package dev.corral.sandbox.driver;
